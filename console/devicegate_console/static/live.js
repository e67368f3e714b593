// The Live page: one EventSource on /live/stream (the console shares one stream reader among its
// tabs); each event becomes the top row; the table keeps the newest data-rows rows.
(function () {
  "use strict";
  var table = document.getElementById("live");
  var rows = document.getElementById("live-rows");
  var status = document.getElementById("live-status");
  var empty = document.getElementById("live-empty");
  var keep = parseInt(table.dataset.rows, 10) || 200;
  window.devicegateLive = { received: 0, state: "connecting" };

  function say(state, text) {
    status.dataset.state = state;
    status.className = "status " + state;
    status.textContent = text;
    window.devicegateLive.state = state;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text == null ? "" : String(text);
    tr.appendChild(td);
    return td;
  }

  function add(event) {
    var tr = document.createElement("tr");
    tr.className = "live-event";
    tr.dataset.vendor = event.vendor;
    tr.dataset.device = event.deviceId;
    tr.dataset.kind = event.kind;
    tr.dataset.eventId = event.eventId;
    var when = cell(tr, event.time, "time");
    when.title = "device time " + event.deviceTime;
    cell(tr, event.vendor);
    var device = cell(tr, "");
    var link = document.createElement("a");
    link.href = event.href;
    link.textContent = event.deviceId;
    device.appendChild(link);
    cell(tr, event.kind, "kind");
    cell(tr, event.summary, "summary");
    cell(tr, event.transport, "transport");
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > keep) { rows.removeChild(rows.lastChild); }
    empty.hidden = true;
    window.devicegateLive.received += 1;
  }

  var source = new EventSource(table.dataset.src);
  source.addEventListener("ready", function () { say("following", "following new events"); });
  source.addEventListener("failed", function (e) {
    source.close();
    say("failed", JSON.parse(e.data).message + ": reload to try again");
  });
  source.onmessage = function (e) { add(JSON.parse(e.data)); };
  source.onerror = function () {
    if (source.readyState !== EventSource.CLOSED) { say("connecting", "reconnecting…"); }
  };
})();
