// The world map's country shapes, fetched as the page starts, beside its first callback.
//
// Plotly fetches a map's topojson only once the map's answer has arrived, and the map is
// drawn after that fetch: one more round trip to the same busy server after every other
// number is in, on every navigation (each page load asks again and gets a 304). Here the
// shapes are asked for as the page loads, from the browser's cache whenever it holds
// them (the file never changes: it ships with the code), and handed to Plotly where it
// looks before fetching (window.PlotlyGeoAssets, which Plotly creates only when absent).
// If they have not arrived when the map is drawn, Plotly fetches them itself as before.
// Measured in bench/README.md (issue 34, "the map's shapes").
(function () {
  var script = document.currentScript;
  if (!script || !window.fetch) return;
  var assets = (window.PlotlyGeoAssets = window.PlotlyGeoAssets || {});
  assets.topojson = assets.topojson || {};
  // This file is served from the dashboard's assets: the shapes sit beside it.
  // Its query (Dash's ?m=, the file's time) makes a new release ask once again.
  var src = new URL(script.src);
  var url = new URL("topojson/world_110m.json", src).pathname + src.search;
  fetch(url, { cache: "force-cache", credentials: "same-origin" })
    .then(function (response) {
      return response.ok ? response.json() : null;
    })
    .then(function (shapes) {
      if (shapes && assets.topojson.world_110m === undefined) {
        assets.topojson.world_110m = shapes;
      }
    })
    .catch(function () {});
})();
