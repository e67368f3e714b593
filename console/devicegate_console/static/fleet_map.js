// The map page: every listed device's latest position (#fleet-positions, JSON), one marker each,
// drawn whether or not tiles load.
(function () {
  "use strict";
  var box = document.getElementById("map");
  var markers = JSON.parse(document.getElementById("fleet-positions").textContent);
  var map = L.map(box);
  if (box.dataset.tiles) {
    L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
  }
  var drawn = markers.map(function (m) {
    var color = m.online ? "#19733a" : "#a3231b";
    var marker = L.circleMarker([m.lat, m.lon], { radius: 7, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1,
                                                   className: "device-marker" })
      .addTo(map)
      .bindTooltip(m.vendor + " " + m.deviceId + (m.online ? "" : " (offline)"));
    marker.on("click", function () { window.location.href = m.href; });
    return marker;
  });
  var group = L.featureGroup(drawn);
  if (drawn.length > 1) {
    map.fitBounds(group.getBounds(), { padding: [30, 30], maxZoom: 15 });
  } else {
    map.setView([markers[0].lat, markers[0].lon], 13);
  }
  window.devicegateFleetMap = { markers: markers, drawn: drawn.length };
})();
