// bench/browser.py's recorder, installed in every document before the page's own scripts
// (CDP Page.addScriptToEvaluateOnNewDocument). It records, on the page's own clock
// (performance.now(): 0 is the navigation's start):
//   log    every change of what a person sees of the overview's numbers (the stats, the
//          first row of each table, whether any panel is loading), as the DOM changes;
//   calls  every Dash callback request (_dash-update-component): when it left and came
//          back, its outputs, the filters it asked for and its bytes each way;
//   draws  every Plotly.react / newPlot: which graph, when it started and when it was drawn
//          (dcc.Graph draws through the global Plotly; wrapped as the bundle defines it);
//   click  when the first mousedown after bench.arm() happened.
// bench/browser.py reads it once the page is quiet; nothing here decides what is right.
(() => {
  if (window.__bench) return;
  const B = (window.__bench = {log: [], calls: [], draws: [], click: null, armed: false,
                               inflight: 0, lastChange: 0});
  const text = (selector) => {
    const el = document.querySelector(selector);
    return el ? el.textContent : null;
  };
  const signature = () => JSON.stringify([
    text('#ov-requests .stat-value'),
    text('#ov-users-count .stat-value'),
    text('#ov-endpoints tbody tr:nth-child(2)'),  // the first row under the header
    text('#ov-users tbody tr:nth-child(2)'),
    !!document.querySelector('[data-dash-is-loading="true"]'),
    !!document.querySelector('.dash-graph--pending'),
  ]);
  // Looked at when the document changes (a MutationObserver, after the change's task),
  // not once a frame: a requestAnimationFrame loop kept headless Chromium's renderer
  // producing frames, about 0.7 of a core all the time on the two-core machine, taken
  // from the server and the page being measured.
  let last = null;
  const look = () => {
    const now = signature();
    if (now !== last) {
      last = now;
      B.log.push([performance.now(), ...JSON.parse(now)]);
      B.lastChange = performance.now();
    }
  };
  look();
  new MutationObserver(look).observe(document, {
    subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ['data-dash-is-loading', 'class'],
  });

  B.arm = () => {
    B.log = [[performance.now(), ...JSON.parse(signature())]];
    B.calls = [];
    B.draws = [];
    B.click = null;
    B.armed = true;
  };
  document.addEventListener('mousedown', () => {
    if (B.armed && B.click === null) B.click = performance.now();
  }, true);

  const realFetch = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : input.url;
    if (url.includes('_dash-layout') || url.includes('_dash-dependencies')) {
      // In flight too (the page is not quiet while its layout is on the way), not a call.
      B.inflight += 1;
      const over = () => { B.inflight -= 1; B.lastChange = performance.now(); };
      return realFetch.apply(this, arguments).then(
        (response) => { response.clone().text().then(over, over); return response; },
        (error) => { over(); throw error; });
    }
    if (!url.includes('_dash-update-component')) return realFetch.apply(this, arguments);
    const body = init && typeof init.body === 'string' ? init.body : '';
    const call = {start: performance.now(), sent: body.length, output: null, query: null};
    try {
      const parsed = JSON.parse(body);
      call.output = parsed.output;
      for (const i of parsed.inputs || []) {
        if (i.id === 'ov-filters' && i.property === 'data') call.query = i.value;
      }
    } catch (e) { /* not ours to judge */ }
    B.calls.push(call);
    B.inflight += 1;
    const done = () => { B.inflight -= 1; B.lastChange = performance.now(); };
    return realFetch.apply(this, arguments).then((response) => {
      call.status = response.status;
      response.clone().text().then((t) => {
        call.end = performance.now();
        call.received = t.length;
        done();
      }, done);
      return response;
    }, (error) => { call.error = String(error); done(); throw error; });
  };

  const wrap = (plotly) => {
    for (const name of ['react', 'newPlot']) {
      const real = plotly[name];
      if (typeof real !== 'function' || real.__bench) continue;
      const wrapped = function (gd, ...rest) {
        const el = typeof gd === 'string' ? document.getElementById(gd) : gd;
        const owner = el && el.closest ? el.closest('[id]') : null;
        const draw = {graph: owner ? owner.id : null, start: performance.now(), end: null};
        B.draws.push(draw);
        const result = real.call(this, gd, ...rest);
        Promise.resolve(result).then(() => {
          draw.end = performance.now();
          B.lastChange = draw.end;
        });
        return result;
      };
      wrapped.__bench = true;
      plotly[name] = wrapped;
    }
  };
  let plotly = window.Plotly;
  if (plotly) wrap(plotly);
  Object.defineProperty(window, 'Plotly', {
    configurable: true,
    get: () => plotly,
    set: (value) => { plotly = value; if (value) wrap(value); },
  });
})();
