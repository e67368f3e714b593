// The device page's map: the track over the chosen range, its stops, and a playback of its points.
// The points come from the console (#map's data-src, JSON) once the page is shown; tiles from the
// server named by --tiles, if any: without them (offline, or none configured) the track is drawn
// on a blank map.
(function () {
  "use strict";
  var box = document.getElementById("map");
  var summary = document.getElementById("track-summary");

  // The same form as the server's times: this machine's clock, "2025-02-07 16:26:30".
  function when(iso) {
    var d = new Date(iso);
    var two = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function describe(data) {
    var n = data.points.length;
    var text = n + " position" + (n === 1 ? "" : "s");
    if (data.cut) { text += " (from the newest " + data.limit + " events: narrow the range to see older ones)"; }
    text += "; " + data.stops.length + " stop" + (data.stops.length === 1 ? "" : "s") + " of " +
      data.stopMinutes + " min or more";
    if (data.stops.length) {
      text += ": " + data.stops.map(function (s) { return when(s.start) + " for " + s.minutes + " min"; }).join(", ");
    }
    return text;
  }

  function draw(data) {
    var points = data.points;
    summary.textContent = describe(data);
    var map = L.map(box);
    if (box.dataset.tiles) {
      L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
    }
    if (!points.length) {
      map.setView([0, 0], 1);
      summary.textContent = "No position between these times.";
      window.devicegateTrack = { points: points, drawn: 0, index: -1, playing: false };
      return;
    }
    var line = points.map(function (p) { return [p.lat, p.lon]; });
    var path = L.polyline(line, { color: "#2456b3", weight: 4, opacity: 0.8, className: "track-line" }).addTo(map);
    L.circleMarker(line[0], { radius: 6, color: "#19733a", fillOpacity: 1 }).addTo(map).bindTooltip("first point");
    if (line.length > 1) {
      L.circleMarker(line[line.length - 1], { radius: 6, color: "#1d2430", fillOpacity: 1 }).addTo(map)
        .bindTooltip("last point");
      map.fitBounds(path.getBounds(), { padding: [30, 30], maxZoom: 17 });
    } else {
      map.setView(line[0], 15);
    }
    data.stops.forEach(function (s) {
      L.circleMarker([s.latitude, s.longitude], { radius: 9, color: "#a3231b", weight: 3, fillOpacity: 0.3 })
        .addTo(map).bindTooltip("stopped " + s.minutes + " min from " + when(s.start));
    });
    var current = L.circleMarker(line[0], { radius: 7, color: "#fff", weight: 2, fillColor: "#e0701b", fillOpacity: 1 })
      .addTo(map);

    var shown = document.getElementById("track-current");
    var scrub = document.getElementById("scrub");
    var button = document.getElementById("play");
    var speed = document.getElementById("speed");
    // What the page shows, for a person's tools and the browser tests: the points, how many the
    // line was drawn through, the current one, whether playback runs.
    var state = { points: points, drawn: path.getLatLngs().length, index: 0, playing: false };
    var timer = null;

    function show(index) {
      var p = points[index];
      state.index = index;
      current.setLatLng([p.lat, p.lon]);
      scrub.value = index;
      shown.dataset.index = index;
      shown.querySelector(".index").textContent = index + 1;
      shown.querySelector(".time").textContent = when(p.t);
      shown.querySelector(".speed").textContent =
        p.speed === null || p.speed === undefined ? "speed not sent" : p.speed + " km/h";
    }
    function stop() {
      clearInterval(timer);
      timer = null;
      state.playing = false;
      button.textContent = "▶ play";
    }
    function step() {
      if (state.index >= points.length - 1) { stop(); return; }
      show(state.index + 1);
    }
    function play() {
      if (state.index >= points.length - 1) { show(0); }
      state.playing = true;
      button.textContent = "❚❚ pause";
      timer = setInterval(step, Number(speed.value));
    }
    button.addEventListener("click", function () { if (state.playing) { stop(); } else { play(); } });
    speed.addEventListener("change", function () { if (state.playing) { stop(); play(); } });
    scrub.addEventListener("input", function () { show(Number(scrub.value)); });
    scrub.max = points.length - 1;
    scrub.disabled = button.disabled = false;
    document.getElementById("track-count").textContent = points.length;
    show(0);
    window.devicegateTrack = state;
  }

  fetch(box.dataset.src, { credentials: "same-origin" })
    .then(function (answer) {
      if (!answer.ok) { throw new Error("HTTP " + answer.status); }
      return answer.json();
    })
    .then(draw)
    .catch(function (error) { summary.textContent = "The track could not be read: " + error.message; });
})();
