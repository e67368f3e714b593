// The tracks page: several devices' tracks over one range, one colour each (#tracks-config, JSON:
// each device's colour and the /track/... address the device page reads its own track from).
// Drawn whether or not tiles load; the legend names each device with its number of points.
(function () {
  "use strict";
  var box = document.getElementById("map");
  var tracks = JSON.parse(document.getElementById("tracks-config").textContent);
  var map = L.map(box).setView([0, 0], 1);
  if (box.dataset.tiles) {
    L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
  }
  var bounds = L.latLngBounds([]);
  var dots = [];
  // What the page shows, for a person's tools and the browser tests: per device, its points and
  // how many the line was drawn through; `done` once every track is read.
  var state = { tracks: [], done: false };

  function legend(track) {
    return document.querySelector('#tracks-legend li[data-vendor="' + CSS.escape(track.vendor) + '"][data-device="' +
      CSS.escape(track.deviceId) + '"]');
  }

  function draw(track, data) {
    var line = data.points.map(function (p) { return [p.lat, p.lon]; });
    var drawn = 0;
    if (line.length === 1) {
      // One position is no line: a larger dot, kept above the others' lines and ends (below).
      dots.push(L.circleMarker(line[0], { radius: 8, color: "#fff", weight: 2, fillColor: track.colour, fillOpacity: 1,
                                          className: "track-line" })
        .addTo(map).bindTooltip(track.vendor + " " + track.deviceId + ": its one position"));
      drawn = 1;
      bounds.extend(line[0]);
    } else if (line.length) {
      var path = L.polyline(line, { color: track.colour, weight: 4, opacity: 0.85, className: "track-line" }).addTo(map)
        .bindTooltip(track.vendor + " " + track.deviceId);
      drawn = path.getLatLngs().length;
      L.circleMarker(line[0], { radius: 6, color: track.colour, weight: 3, fillColor: "#fff", fillOpacity: 1 })
        .addTo(map).bindTooltip(track.deviceId + ": first point");
      L.circleMarker(line[line.length - 1], { radius: 6, color: "#fff", weight: 2, fillColor: track.colour,
                                              fillOpacity: 1 }).addTo(map).bindTooltip(track.deviceId + ": last point");
      bounds.extend(path.getBounds());
    }
    var n = data.points.length;
    var text = n ? n + " position" + (n === 1 ? "" : "s") : "no position between these times";
    if (data.cut) { text += " (from its newest " + data.limit + " events)"; }
    legend(track).querySelector(".count").textContent = text;
    return { vendor: track.vendor, deviceId: track.deviceId, colour: track.colour, points: n, drawn: drawn };
  }

  tracks.forEach(function (track) {
    legend(track).querySelector(".swatch").style.backgroundColor = track.colour;
  });
  Promise.all(tracks.map(function (track) {
    return fetch(track.src, { credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.json();
      })
      .then(function (data) { return draw(track, data); })
      .catch(function (error) {
        legend(track).querySelector(".count").textContent = "could not be read: " + error.message;
        return { vendor: track.vendor, deviceId: track.deviceId, colour: track.colour, points: 0, drawn: 0,
                 error: error.message };
      });
  })).then(function (shown) {
    dots.forEach(function (dot) { dot.bringToFront(); });
    if (bounds.isValid()) { map.fitBounds(bounds, { padding: [30, 30], maxZoom: 16 }); }
    state.tracks = shown;
    state.done = true;
  });
  window.devicegateTracks = state;
})();
