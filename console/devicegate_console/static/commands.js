// The device page's commands: while one is still open (queued or sent), the list is read again
// every two seconds (the console's /commands/... fragment), so the operator watches it reach its answer.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  window.devicegateCommands = { polls: 0 };

  function poll() {
    var list = document.getElementById("command-list");
    if (!list || list.dataset.open !== "1") { return; }
    fetch(list.dataset.src + window.location.search, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#command-list");
          if (fresh) { list.replaceWith(fresh); }
        }
        window.devicegateCommands.polls += 1;
        setTimeout(poll, PERIOD_MS);
      })
      .catch(function () { setTimeout(poll, PERIOD_MS); });
  }
  setTimeout(poll, PERIOD_MS);
})();
(function () {
  "use strict";
  // Typing a raw command chooses "raw"; choosing a typed one chooses "typed".
  var raw = document.getElementById("send-raw");
  var typed = document.getElementById("send-command");
  if (raw) { raw.addEventListener("input", function () { document.getElementById("send-raw-choice").checked = true; }); }
  if (typed) {
    typed.addEventListener("change", function () {
      document.querySelector('input[name="what"][value="typed"]').checked = true;
    });
  }
})();
