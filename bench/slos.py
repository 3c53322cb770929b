"""SLOs, the release comparison and usage at scale: times and exactness.

Loads `--rows` requests (10 M) for one key over a year straight into the columnar store
(bench/lake_load.py, with consumers: 10,000 of them in four groups), plus `--hot` rows in
the hot table, on PostgreSQL. Then times (median of `--repeats`):
- the SLOs page's question: four SLOs (availability, 4xx too, latency of some
  endpoints, one consumer group; 30-day windows) with SLI, budget, burn rates and
  burn-down, from one snapshot (server.slos.status.statuses);
- one burn-rate alert rule's measure (the evaluation's work per rule and minute);
- a release comparison one hour each side of a moment three days ago
  (server.deploys.comparison.compare);
- the last closed month's usage per consumer: the first ask (which freezes it) and three
  later ones, each checked identical and equal to a plain GROUP BY over the same rows.
Each SLO's requests and bad requests are checked against a plain count as well.

Run: `bench/slos.py`; `--rows 200000 --hot 1000 --repeats 1` (smoke), `--keep NAME`
(as bench/dashboard.py: reuse a loaded database and store).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dashboard import _hot_rows, bind, progress, settings_for, store_dir  # noqa: E402
from bench.services import fresh_database  # noqa: E402

TARGET_SECONDS = 1.0
USAGE_TARGET_SECONDS = 2.0
SLOS = [
    {"id": 1, "name": "API", "objective": "availability", "include_4xx": False,
     "threshold_ms": None, "target": 99.9, "window_days": 30, "hostname": None,
     "endpoints": [], "consumer_group": None},
    {"id": 2, "name": "4xx too", "objective": "availability", "include_4xx": True,
     "threshold_ms": None, "target": 95.0, "window_days": 30, "hostname": None,
     "endpoints": [], "consumer_group": None},
    {"id": 3, "name": "Users fast", "objective": "latency", "include_4xx": False,
     "threshold_ms": 300, "target": 99.0, "window_days": 30, "hostname": None,
     "endpoints": ["GET /v1/users*", "/v2/users/*"], "consumer_group": None},
    {"id": 4, "name": "Enterprise", "objective": "availability", "include_4xx": False,
     "threshold_ms": None, "target": 99.95, "window_days": 30, "hostname": None,
     "endpoints": [], "consumer_group": "enterprise"},
]  # fmt: skip


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def plain_count(key_id: int, slo: dict, since_us: int, until_us: int) -> tuple[int, int]:
    """The SLO's requests and bad requests by a plain count (no hour bound, scope by hand)."""
    from server.lake.source import open_rows

    where = [f"epoch_us(created_at) >= {since_us}", f"epoch_us(created_at) < {until_us}"]
    if slo["consumer_group"]:
        where.append(f"consumer_group = '{slo['consumer_group']}'")
    if slo["endpoints"]:
        where.append(
            "("
            + " OR ".join(f"route GLOB '{p}' OR endpoint GLOB '{p}'" for p in slo["endpoints"])
            + ")"  # fmt: skip
        )
    if slo["objective"] == "latency":
        bad = f"response_time > {slo['threshold_ms']}"
    else:
        bad = f"status >= {400 if slo['include_4xx'] else 500}"
    with open_rows(key_id) as rows:
        n, b = rows.query(
            f"SELECT count(*), sum(CASE WHEN {bad} THEN 1 ELSE 0 END) FROM {{rows}} "
            f"WHERE {' AND '.join(where)}"
        ).fetchone()
    return int(n), int(b or 0)


def plain_usage(key_id: int, since_us: int, until_us: int) -> dict:
    from server.lake.source import open_rows

    with open_rows(key_id) as rows:
        found = rows.query(
            "SELECT consumer, count(*), sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END) "
            f"FROM {{rows}} WHERE epoch_us(created_at) >= {since_us} "
            f"AND epoch_us(created_at) < {until_us} GROUP BY consumer"
        ).fetchall()
    return {c: (int(n), int(e)) for c, n, e in found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--hot", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=256, help="ENGINE_MEMORY_MB")
    parser.add_argument("--keep", metavar="NAME")
    args = parser.parse_args()

    from bench.lake_load import load_key
    from server.deploys.comparison import compare
    from server.keys.api_keys import create_key
    from server.slos import burn, status
    from server.usage.store import usage

    with fresh_database("apia_slos", keep=args.keep) as url, store_dir(args.keep) as data_dir:
        settings = settings_for(url, data_dir, args.memory_mb)
        db = bind(settings)
        loaded = Path(data_dir) / "slos_loaded.json"
        if loaded.exists():
            state = json.loads(loaded.read_text())
            key_id, now = state["key_id"], datetime.fromisoformat(state["now"])
        else:
            now = datetime.now(UTC)
            with db.begin() as conn:
                key_id, _ = create_key(conn)
            began = time.monotonic()
            load_key(db, settings, key_id, args.rows, now, progress, extras=True)
            if args.hot:
                _hot_rows(db, key_id, args.hot, now)
            progress(f"loaded in {time.monotonic() - began:.0f} s")
            loaded.write_text(json.dumps({"key_id": key_id, "now": now.isoformat()}))

        results, wrong = {}, []
        seconds, found = timed(lambda: status.statuses(key_id, SLOS, now), args.repeats)
        results["slo_page_4_slos_s"] = seconds
        for slo, state in zip(SLOS, found, strict=True):
            expected = plain_count(key_id, slo, state.until_us - 30 * 86_400_000_000,
                                   state.until_us)  # fmt: skip
            if (state.requests, state.bad) != expected:
                wrong.append((slo["name"], (state.requests, state.bad), expected))
            state.burn_down()
        progress(f"SLO page (4 SLOs, 30 days): {seconds:.3f} s")

        names = ["30m", "6h", "3d"]
        seconds, _ = timed(lambda: burn.rates(key_id, SLOS[0], names, status.us(now)), args.repeats)
        results["burn_rule_measure_s"] = seconds
        progress(f"one slow-burn rule's measure: {seconds:.3f} s")

        moment = now - timedelta(days=3)
        deploy = {"id": 1, "deployed_at": status.us(moment), "hostname": None}
        seconds, found = timed(lambda: compare(key_id, deploy, 60, now), args.repeats)
        results["release_comparison_s"] = seconds
        progress(f"release comparison (1 h each side, {len(found['endpoints'])} endpoints): "
                 f"{seconds:.3f} s")  # fmt: skip

        # bench/lake_load.py gives its rows ids of its own (key << 40 + ...), far above the
        # hot table's sequence that a freeze's boundary comes from: every loaded row would
        # count as late. The boundary is set above them; the questions asked are the same.
        from server.usage import store as usage_store

        usage_store.seal = lambda _db: {"requests": 2**62}
        first_day = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        month = (first_day - timedelta(days=1)).strftime("%Y-%m")
        began = time.perf_counter()
        frozen = usage(key_id, month, "consumer", now).as_dict()
        results["usage_first_ask_s"] = time.perf_counter() - began
        later = []
        for _ in range(3):
            began = time.perf_counter()
            again = usage(key_id, month, "consumer", now).as_dict()
            later.append(time.perf_counter() - began)
            if again != frozen:
                wrong.append(("usage differs between asks", month))
        results["usage_later_asks_s"] = statistics.median(later)
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        plain = plain_usage(key_id, status.us(start), status.us(first_day))
        got = {r["name"]: (r["requests"], r["errors"]) for r in frozen["rows"]}
        if got != plain:
            wrong.append(("usage differs from a plain GROUP BY", month))
        results["usage_consumers"] = sum(1 for name in got if name)
        results["usage_requests"] = frozen["requests"]
        progress(f"usage {month} per consumer ({results['usage_consumers']:,} consumers, "
                 f"{frozen['requests']:,} requests): first ask {results['usage_first_ask_s']:.3f}"
                 f" s, later asks {results['usage_later_asks_s']:.3f} s")  # fmt: skip

    print()
    print(f"rows: {args.rows:,} for the key ({args.hot:,} hot)")
    for name, value in results.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value:,}")
    slowest = max(results["slo_page_4_slos_s"], results["release_comparison_s"])
    pages_met = "met" if slowest <= TARGET_SECONDS else "MISSED"
    usage_met = "met" if results["usage_first_ask_s"] <= USAGE_TARGET_SECONDS else "MISSED"
    print(f"pages target {TARGET_SECONDS} s: {pages_met}; usage target {USAGE_TARGET_SECONDS} s: "
          f"{usage_met}")  # fmt: skip
    print(f"exact: {wrong or 'yes'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
