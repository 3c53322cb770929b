// A resize to the size a chart already has draws nothing.
//
// dcc.Graph asks Plotly to resize each graph after its first drawing, and again when it
// first observes the graph's box; Plotly's resize then draws the whole chart a second
// time 100 ms later (a relayout with autosize), whether or not the size changed. On the
// overview that is every chart drawn twice on each page load: the second drawing of all
// eleven came 250-370 ms after the first (tests/dash_app/test_browser.py counts them).
// Here a resize whose graph already has its box's width and height (the size Plotly's
// autosize would take) resolves at once; any other size is resized as before, so the
// charts still follow the window. Plotly's own window-resize listener does not pass here.
(function () {
  function sameSize(gd) {
    var div = typeof gd === "string" ? document.getElementById(gd) : gd;
    var full = div && div._fullLayout;
    if (!full || !div.isConnected) return false;
    var style = window.getComputedStyle(div);
    var width = parseFloat(style.width);
    var height = parseFloat(style.height);
    // Plotly keeps the box's size as it reads it (fractions of a pixel included).
    return width > 0 && Math.abs(width - full.width) < 0.5 && Math.abs(height - full.height) < 0.5;
  }

  function patch(plotly) {
    var plots = plotly && plotly.Plots;
    if (!plots || typeof plots.resize !== "function" || plots.resize.sameSizeKept) return;
    var resize = plots.resize;
    var kept = function (gd) {
      if (sameSize(gd)) {
        return Promise.resolve(typeof gd === "string" ? document.getElementById(gd) : gd);
      }
      return resize.apply(this, arguments);
    };
    kept.sameSizeKept = true;
    plots.resize = kept;
  }

  if (window.Plotly) {
    patch(window.Plotly);
    return;
  }
  // Plotly arrives later (dcc.Graph loads it when a graph first draws): patch it as it
  // is set, keeping whatever else watches the name (a page's own accessor).
  var before = Object.getOwnPropertyDescriptor(window, "Plotly");
  if (before && !before.configurable) return;
  var value;
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    enumerable: true,
    get: function () {
      return before && before.get ? before.get.call(window) : value;
    },
    set: function (plotly) {
      if (before && before.set) before.set.call(window, plotly);
      else value = plotly;
      patch(plotly);
    },
  });
})();
