"""A view's first refresh in a web process that has not seen it, with the summaries'
answers shared in Redis (server.stats.summaries.remembered) and without.

Each gunicorn worker keeps the closed months' summary answers it computed (_Kept); a
view whose answers another worker computed used to be cold in this one. This times the
overview's whole refresh (dash_app.panels.refresh, what bench/browser.py calls "the
engine alone") in one process, three ways, in turn for each view and round:

  cold    nothing kept here, nothing in Redis (a view no process has seen)
  shared  nothing kept here, Redis holds what `cold` computed (another worker saw it)
  kept    this process computed it already (the same worker again)

and prints each view's medians and the ratio cold / shared. Every way must show the same
numbers (checked). Uses bench/browser.py's or bench/dashboard.py's --keep store:

    python bench/summaries_shared.py --keep apia_10u --rows 10000000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dashboard import store_dir  # noqa: E402
from bench.services import fresh_database, private_redis, progress  # noqa: E402

VIEWS = (
    ("30d", ()),
    ("6m", ()),
    ("1y", ()),
    ("all", ()),
    ("1y", (("status_class", "2xx"),)),
    ("all", (("browser", "Chrome"),)),
)
WAYS = ("cold", "shared", "kept")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", required=True, help="a kept store (bench/browser.py --keep)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="its rows (for the report)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import json

    from server.config import Config, use_config
    from server.db import init_engine
    from server.queue import init_queue

    with (
        fresh_database("apia_browser", keep=args.keep) as url,
        store_dir(args.keep) as data_dir,
        private_redis() as redis_url,
    ):
        state = Path(data_dir) / "browser.json"
        if not state.exists():
            raise SystemExit(f"--keep {args.keep} holds no rows: load them with bench/browser.py")
        key_id = json.loads(state.read_text())["key_id"]
        settings = Config.from_env(
            {}, DATABASE_URL=url, DATA_DIR=data_dir, REDIS_URL=redis_url, TESTING=True,
            ANSWER_CACHE_MB=0,
        )  # fmt: skip
        use_config(settings)
        init_queue("")
        init_engine(url)
        return measure(key_id, args)


def measure(key_id: int, args) -> int:
    from dash_app.panels import refresh
    from server.stats import summaries
    from server.stats.filters import Filters

    shared = summaries.shared_store()
    assert shared is not None, "no Redis: nothing is shared"
    times: dict = {(v, w): [] for v in VIEWS for w in WAYS}
    shown: dict = {}

    def timed(view, way) -> None:
        period, clicks = view
        filters = Filters(period=period)
        for dim, value in clicks:
            filters = filters.with_click(dim, value)
        started = time.perf_counter()
        data, _figures = refresh(key_id, filters)
        times[(view, way)].append(time.perf_counter() - started)
        seen = (data.summary["requests"], data.users)
        if shown.setdefault(view, seen) != seen:
            raise SystemExit(f"{view} {way}: {seen} against {shown[view]}: not the same numbers")

    for view in VIEWS:  # untimed: the engine's first connection, the files' metadata
        timed(view, "kept")
    for key in times:
        times[key].clear()
    load = [os.getloadavg()[0]]
    for number in range(1, args.rounds + 1):
        progress(f"round {number}/{args.rounds}")
        for view in VIEWS:
            summaries._kept.clear()
            shared.clear()
            timed(view, "cold")
            summaries._kept.clear()
            timed(view, "shared")
            timed(view, "kept")
    load.append(os.getloadavg()[0])
    print(f"\n{args.rows:,} rows; {args.rounds} rounds; load {load[0]:.1f} -> {load[1]:.1f}")
    print(f"{'view':<22}{'cold':>9}{'shared':>9}{'kept':>9}{'cold / shared':>15}")
    ratios = []
    for view in VIEWS:
        med = {w: statistics.median(times[(view, w)]) for w in WAYS}
        ratios.append(med["cold"] / med["shared"])
        name = view[0] + "".join(f" {d}={v}" for d, v in view[1])
        print(f"{name:<22}{med['cold']:>8.3f}s{med['shared']:>8.3f}s{med['kept']:>8.3f}s"
              f"{ratios[-1]:>14.2f}x")  # fmt: skip
    print(
        f"cold / shared: median {statistics.median(ratios):.2f}x; shared reads "
        f"{summaries.shared_counts['hit']:,} hits, {summaries.shared_counts['miss']:,} misses"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
