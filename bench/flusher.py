"""The middleware flusher's encode (JSON + gzip of a 1,000-record batch) by chunk size.

`Client._encode` formats and compresses a batch ENCODE_CHUNK records at a time. This
times the encode's CPU (thread time) for the shipped chunk size and for others,
alternating them call by call so that the machine's other load falls on all alike,
and prints each against the whole batch as one text (one chunk of 1,000).

Records look like a loaded server's: 16 concurrent connections, so start times are not
in order. The flusher runs on the host API's core, so its CPU is the host's.

    python bench/flusher.py           # 300 batches of each size
    python bench/flusher.py --quick   # 30
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
SIZES = (1000, 500, 250, 200, 100, 50)


def sample_records(count: int) -> list[tuple]:
    """Records finishing every 0.14 ms, each started about 2.3 ms earlier."""
    rng = random.Random(7)
    now = time.perf_counter()
    records = []
    for i in range(count):
        finished = now + i * 1.4e-4
        started = finished - 0.0023 + rng.uniform(-0.0005, 0.0005)
        records.append(
            (started, finished, "GET", "/", 200, b"127.0.0.1:8000", None, "127.0.0.1", None)
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300, help="batches of each size")
    parser.add_argument("--quick", action="store_true", help="30 batches of each size")
    args = parser.parse_args(argv)
    batches = 30 if args.quick else args.batches

    sys.path.insert(0, str(ROOT / "middleware"))
    from api_analytics import core

    shipped = core.ENCODE_CHUNK
    sizes = sorted({*SIZES, shipped}, reverse=True)
    client = core.Client("bench-key", "http://127.0.0.1:9", 0)
    records = sample_records(BATCH)
    times: dict[int, list[float]] = {size: [] for size in sizes}
    print(f"{batches} batches of {BATCH:,} records per chunk size, alternated")
    for number in range(batches):
        for size in sizes:
            core.ENCODE_CHUNK = size
            batch = list(records)
            started = time.thread_time()
            client._encode(batch)
            times[size].append(time.thread_time() - started)
        if (number + 1) % 100 == 0:
            print(f"  {number + 1}/{batches}", flush=True)
    core.ENCODE_CHUNK = shipped

    whole = times[BATCH]
    print()
    print(f"{'chunk':>6}{'us/batch':>10}{'us/record':>11}{'one-text/this':>15}")
    for size in sizes:
        ratio = statistics.median(w / t for w, t in zip(whole, times[size], strict=True))
        median = statistics.median(times[size]) * 1e6
        mark = "  <- shipped" if size == shipped else ""
        print(f"{size:>6}{median:>10.0f}{median / BATCH:>11.3f}{ratio:>15.3f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
