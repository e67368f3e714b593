// The device page's map: the track over the chosen range, its stops, and a playback of its points.
// The data comes from the page itself (#track-data, JSON); tiles from the server named by --tiles,
// if any: without them (offline, or none configured) the track is drawn on a blank map.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("track-data").textContent);
  // The same form as the server's times: this machine's clock, "2025-02-07 16:26:30".
  function when(iso) {
    var d = new Date(iso);
    var two = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }
  var points = data.points;
  var box = document.getElementById("map");
  var map = L.map(box, { preferCanvas: false });
  var tiles = box.dataset.tiles;
  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
  }
  var line = points.map(function (p) { return [p.lat, p.lon]; });
  var path = L.polyline(line, { color: "#2456b3", weight: 4, opacity: 0.8, className: "track-line" }).addTo(map);
  L.circleMarker(line[0], { radius: 6, color: "#19733a", fillOpacity: 1 }).addTo(map).bindTooltip("first point");
  if (line.length > 1) {
    L.circleMarker(line[line.length - 1], { radius: 6, color: "#1d2430", fillOpacity: 1 }).addTo(map)
      .bindTooltip("last point");
  }
  data.stops.forEach(function (s) {
    L.circleMarker([s.latitude, s.longitude], { radius: 9, color: "#a3231b", weight: 3, fillOpacity: 0.3 })
      .addTo(map).bindTooltip("stopped " + s.minutes + " min from " + when(s.start));
  });
  if (line.length > 1) {
    map.fitBounds(path.getBounds(), { padding: [30, 30], maxZoom: 17 });
  } else {
    map.setView(line[0], 15);
  }
  var current = L.circleMarker(line[0], { radius: 7, color: "#fff", weight: 2, fillColor: "#e0701b", fillOpacity: 1 })
    .addTo(map);

  var shown = document.getElementById("track-current");
  var scrub = document.getElementById("scrub");
  var button = document.getElementById("play");
  var speed = document.getElementById("speed");
  // What the page shows, for a person's tools and the browser tests: the points, how many the line
  // was drawn through, the current one, whether playback runs.
  var state = { points: points, drawn: path.getLatLngs().length, index: 0, playing: false };
  window.devicegateTrack = state;
  var timer = null;

  function show(index) {
    var p = points[index];
    state.index = index;
    current.setLatLng([p.lat, p.lon]);
    scrub.value = index;
    shown.dataset.index = index;
    shown.querySelector(".index").textContent = index + 1;
    shown.querySelector(".time").textContent = when(p.t);
    shown.querySelector(".speed").textContent = p.speed === null || p.speed === undefined ? "speed not sent" : p.speed + " km/h";
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
  show(0);
})();
