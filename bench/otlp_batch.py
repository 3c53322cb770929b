"""The web's CPU for one OTLP export against one JSON batch of the same rows, in one process.

The rows of bench/ingest.py, as 1,000-row JSON batches (our clients' shape) and as the
same rows in 1,000-span protobuf exports (bench/ingest.py --otlp: one HTTP server span a
row, the current semantic conventions), each taken through the steps the web runs before
its answer, without HTTP or the write: decode (orjson; server.ingest.otlp.read), the
spans as rows (server.ingest.spans), check (server.ingest.columns) and enrich. CPU time of
this process (not wall time: the machine is shared), the garbage collector set as in
gunicorn's workers (server.runtime.gunicorn_config), the best of `--repeats`, in
microseconds a row per step, and the ratio. The exports are taken twice: with the
attribute caches of server.ingest.wire warm from the repeat before (every attribute seen
already), and cold (emptied first, as for spans whose client addresses, paths and users
the process has not seen, as in bench/ingest.py --otlp).

Run: `bench/otlp_batch.py` (20,000 rows, 7 repeats); `--quick` (5,000 rows, 3).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.ingest import make_rows, otlp_bodies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 5_000, 3

    from server.cli import upgrade_database
    from server.db import init_engine
    from server.ingest import geo, otlp
    from server.ingest.columns import check
    from server.ingest.enrich import enrich
    from server.ingest.spans import rows_of
    from server.lake import agents as useragents

    engine = init_engine(f"sqlite:///{tempfile.mkdtemp(prefix='bench-otlp-')}/bench.db")
    upgrade_database(str(engine.url))
    geo.init_geo("")
    useragents.warm()
    now = datetime.now(UTC)
    rows = make_rows(args.rows, random.Random(7), now - timedelta(hours=23), timedelta(hours=23))
    exports = [gzip.decompress(body) for body in otlp_bodies(rows, 1000)]
    batches = [orjson.dumps({"framework": "FastAPI", "privacy_level": 0,
                             "requests": rows[i : i + 1000]})
               for i in range(0, len(rows), 1000)]  # fmt: skip

    def json_steps(spent: dict) -> None:
        for body in batches:
            t0 = time.process_time()
            payload = orjson.loads(body)
            t1 = time.process_time()
            batch, _ = check(payload["requests"], 0, datetime.now(UTC))
            t2 = time.process_time()
            enrich(engine, 1, "FastAPI", batch)
            t3 = time.process_time()
            for step, took in (("decode", t1 - t0), ("check", t2 - t1), ("enrich", t3 - t2)):
                spent[step] = spent.get(step, 0) + took

    from server.ingest import wire

    def otlp_cold(spent: dict) -> None:
        wire._SEEN.clear()
        getattr(wire, "_PICKS", {}).clear()
        otlp_steps(spent)

    def otlp_steps(spent: dict) -> None:
        for body in exports:
            t0 = time.process_time()
            message, _ = otlp.read(body, otlp.PROTOBUF, "", 1 << 30)
            t1 = time.process_time()
            spans = rows_of(message)
            t2 = time.process_time()
            batch, _ = check(spans.rows, 0, datetime.now(UTC), masks=lambda: None)
            t3 = time.process_time()
            enrich(engine, 1, "OpenTelemetry", batch)
            t4 = time.process_time()
            for step, took in (("decode", t1 - t0), ("spans", t2 - t1), ("check", t3 - t2),
                               ("enrich", t4 - t3)):  # fmt: skip
                spent[step] = spent.get(step, 0) + took

    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, steps in (("JSON batches", json_steps), ("OTLP protobuf", otlp_steps),
                            ("OTLP, cold", otlp_cold)):  # fmt: skip
            spent: dict = {}
            steps(spent)
            spent["total"] = sum(spent.values())
            if name not in best or spent["total"] < best[name]["total"]:
                best[name] = spent
    print(f"== one process, {args.rows:,} rows in 1,000-row batches, CPU µs a row "
          f"(best of {args.repeats}) ==")  # fmt: skip
    for name, spent in best.items():
        steps = ", ".join(f"{step} {s / args.rows * 1e6:.2f}" for step, s in spent.items())
        print(f"{name:<14} {steps}")
    for name in ("OTLP protobuf", "OTLP, cold"):
        ratio = best[name]["total"] / best["JSON batches"]["total"]
        print(f"{name} / JSON CPU a row: {ratio:.2f}")


if __name__ == "__main__":
    main()
