"""Figures benchmark: the overview's eleven charts and their JSON, this code against a ref.

Computes one overview answer (dash_app.panels.compute) over --rows requests loaded into a
fresh store (bench/lake_load.py; or a `bench/dashboard.py --keep NAME` store with --keep),
then builds its figures and the JSON Dash sends for them (dash_app.panels.render, then
plotly's encoder) with this checkout's dash_app/figures.py and with the one at --ref,
alternated --rounds times in one process, and prints each median and the ratio.

    python bench/figures.py --ref 47732b7                  # 300,000 rows, loaded here
    python bench/figures.py --ref 47732b7 --keep apia_100m --period 30d
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
    parser.add_argument("--ref", required=True, help="the git ref to compare with")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--keep", metavar="NAME", help="a bench/dashboard.py --keep store")
    parser.add_argument("--period", default="30d")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import plotly.graph_objects as go
    from plotly.io.json import to_json_plotly

    import dash_app.panels as panels
    from dash_app import figures as here
    from server.stats.filters import Filters

    ref = figures_at(args.ref)
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

        def build(module) -> tuple[float, int]:
            panels.figures = module
            started = time.perf_counter()
            out = {k: v.to_plotly_json() if isinstance(v, go.Figure) else v
                   for k, v in panels.render(answer).items()}  # fmt: skip
            body = to_json_plotly(out)  # what Dash does with the callback's outputs
            return time.perf_counter() - started, len(body)

        found = {"ref": [], "here": []}
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


if __name__ == "__main__":
    raise SystemExit(main())
