"""Figures benchmark: the overview's eleven charts and their JSON, this code against a ref.

Computes one overview answer (dash_app.panels.compute) over --rows requests loaded into a
fresh store (bench/lake_load.py; or a `bench/dashboard.py --keep NAME` store with --keep),
then builds its figures and the JSON Dash sends for them (dash_app.panels.render, then
plotly's encoder) with this checkout's dash_app/figures.py and with the one at --ref,
alternated --rounds times in one process, and prints each median and the ratio.

With --draw, Chromium draws those figures with the Plotly the dashboard serves, one after
another in a page of its own, alternated --rounds times, and prints the median time each
way, the ratio and each figure's median. With --ref, the figures built by this checkout
against those built by the ref's dash_app/figures.py; without, the same figures in a page
with the browser's own parseFloat, parseInt and String trims (as dash_app.INDEX keeps
them) against one where Dash's Babel polyfill replaced them (as Dash's own page had it).

    python bench/figures.py --ref 47732b7                  # 300,000 rows, loaded here
    python bench/figures.py --ref 47732b7 --keep apia_100m --period 30d
    python bench/figures.py --draw --keep apia_10m --period all
    python bench/figures.py --draw --ref 8fb32c2 --keep apia_10m --period all
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import bind, settings_for, store_dir  # noqa: E402
from bench.services import fresh_database, progress  # noqa: E402


def figures_at(ref: str):
    """dash_app/figures.py as it was at `ref`, imported as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{ref}:dash_app/figures.py"], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="bench-figures-")) / "figures_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("figures_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="the git ref to compare with")
    parser.add_argument(
        "--draw", action="store_true", help="draw the figures in Chromium, polyfilled or not"
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--keep", metavar="NAME", help="a bench/dashboard.py --keep store")
    parser.add_argument("--period", default="30d")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if not args.ref and not args.draw:
        parser.error("give --ref (build the figures against a ref) or --draw (draw them)")

    import plotly.graph_objects as go
    from plotly.io.json import to_json_plotly

    import dash_app.panels as panels
    from dash_app import figures as here
    from server.stats.filters import Filters

    ref = figures_at(args.ref) if args.ref else None
    with fresh_database("apia_figures", keep=args.keep) as url, store_dir(args.keep) as data:
        settings = settings_for(url, data, 256)
        db = bind(settings)
        kept = Path(data) / "loaded.json"
        if kept.exists():
            state = json.loads(kept.read_text())
            key_id, now = state["key_id"], datetime.fromisoformat(state["now"])
        elif args.keep:
            raise SystemExit(f"--keep {args.keep}: no bench/dashboard.py rows there")
        else:
            from bench.lake_load import load_key
            from server.keys.api_keys import create_key

            with db.begin() as conn:
                key_id, _ = create_key(conn)
            now = datetime.now(UTC)
            load_key(db, settings, key_id, args.rows, now, progress)
        answer = panels.compute(key_id, Filters(period=args.period), now)
        if args.draw:

            def shown(module) -> dict:
                panels.figures = module
                try:
                    return {k: v for k, v in panels.render(answer).items()
                            if isinstance(v, dict) and "data" in v}  # fmt: skip
                finally:
                    panels.figures = here

            if ref is not None:
                pages = {"ref": (shown(ref), ""), "here": (shown(here), "")}
                return draw(pages, args.rounds, f"{args.ref}'s figures", "this checkout's")
            figures = shown(here)
            pages = {"own": (figures, ""), "polyfilled": (figures, POLYFILL)}
            return draw(pages, args.rounds, "the polyfill's replacements", "the browser's own")

        def build(module) -> tuple[float, int]:
            panels.figures = module
            started = time.perf_counter()
            out = {k: v.to_plotly_json() if isinstance(v, go.Figure) else v
                   for k, v in panels.render(answer).items()}  # fmt: skip
            body = to_json_plotly(out)  # what Dash does with the callback's outputs
            return time.perf_counter() - started, len(body)

        found = {"ref": [], "here": []}  # --ref
        for _ in range(args.rounds):
            for name, module in (("ref", ref), ("here", here)):
                found[name].append(build(module))
        panels.figures = here
    medians = {name: statistics.median(t for t, _ in runs) for name, runs in found.items()}
    for name in ("ref", "here"):
        print(
            f"{name:>4}: median {medians[name] * 1000:.1f} ms, {found[name][0][1]:,} bytes of JSON"
        )
    print(f"ref / here: {medians['ref'] / medians['here']:.2f}x ({args.rounds} rounds, alternated)")
    return 0


# A page that draws the figures one after another, as the overview does, and says how long
# that took, in all and each (the map's country shapes fetched from the dashboard's own
# assets included).
PAGE = """<!DOCTYPE html><html><body>{scripts}<script src="plotly.min.js"></script><script>
fetch('{name}.json').then((r) => r.json()).then(async (figures) => {{
  const started = performance.now();
  const each = {{}};
  for (const [name, figure] of Object.entries(figures)) {{
    const div = document.createElement('div');
    div.style.width = '640px';
    document.body.appendChild(div);
    const start = performance.now();
    await Plotly.newPlot(div, figure.data, figure.layout,
                         {{displayModeBar: false, responsive: true, topojsonURL: 'topojson/'}});
    each[name] = performance.now() - start;
  }}
  window.figureMs = each;
  window.drawnMs = performance.now() - started;
}});
</script></body></html>"""
POLYFILL = '<script src="polyfill.js"></script>'


def draw(pages: dict, rounds: int, first: str, second: str) -> int:
    """Chromium draws each page's figures ({name: (figures, scripts before Plotly)}, two
    pages: `first` and `second` say what each holds), alternated `rounds` times."""
    import functools
    import http.server
    import shutil
    import threading

    import dash
    import plotly

    from bench.browser import start_chromium, wait
    from bench.services import free_port

    site = Path(tempfile.mkdtemp(prefix="bench-draw-"))
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", site)
    polyfill = Path(dash.__file__).parent / "deps" / "polyfill@7.12.1.min.js"
    shutil.copy(polyfill, site / "polyfill.js")
    (site / "topojson").symlink_to(ROOT / "dash_app" / "assets" / "topojson")
    for name, (figures, scripts) in pages.items():
        (site / f"{name}.json").write_text(json.dumps(figures))
        (site / f"{name}.html").write_text(PAGE.format(scripts=scripts, name=name))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    driver = start_chromium()

    def drawn() -> tuple[float, dict]:
        total = wait(driver, lambda: driver.execute_script("return window.drawnMs"),
                     "the figures to be drawn")  # fmt: skip
        return float(total), driver.execute_script("return window.figureMs")

    found = {name: [] for name in pages}
    try:
        for name in pages:  # untimed: the browser's cache, the JIT's first run
            driver.get(f"{base}/{name}.html")
            drawn()
        for _ in range(rounds):
            for name in found:
                driver.get(f"{base}/{name}.html")
                found[name].append(drawn())
    finally:
        driver.quit()
        server.shutdown()
    a, b = list(pages)
    medians = {name: statistics.median(t for t, _ in runs) for name, runs in found.items()}
    count = len(pages[a][0])
    print(f"{count} figures drawn in turn in Chromium ({rounds} rounds, alternated):")
    for name, label in ((a, first), (b, second)):
        totals = [t for t, _ in found[name]]
        print(f"  {label:>29}: median {medians[name]:.0f} ms "
              f"(lowest {min(totals):.0f}, highest {max(totals):.0f})")  # fmt: skip
    print(f"{a} / {b}: {medians[a] / medians[b]:.2f}x")
    print("each figure, median ms:")
    for figure in pages[a][0]:
        each = [statistics.median(ms[figure] for _, ms in found[name]) for name in (a, b)]
        print(f"  {figure:>14}: {each[0]:7.1f} {each[1]:7.1f}")
    json_sizes = ", ".join(f"{name} {len(json.dumps(f)):,}" for name, (f, _) in pages.items())
    print(f"bytes of JSON: {json_sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
