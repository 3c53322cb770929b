"""The flusher's CPU for what our client reports of itself (issue 35), against the same
batches without it, in one process, alternated.

A batch of 1,000 records as the ASGI middleware buffers them (Host header bytes, five
hostnames) is encoded (`Client._encode`: JSON and gzip, what every send costs) with and
without the additions: `Announcer.see` of the hostnames the formatter cached (only with
`app_version` set), the `X-Client-Drops` line and the request head with `X-Client-Time`.
Prints per-batch medians and the ratio with / without; the request path is not touched by
any of it.

Run: `bench/client_reports.py [--rounds 41] [--records 1000] [--aa]` (CPU time of the
thread; `--aa`: both sides without, two clients alike, to see the method's own spread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "middleware"))

from api_analytics.core import Client  # noqa: E402
from api_analytics.transport import Transport  # noqa: E402


def records(count: int) -> list[tuple]:
    now = time.perf_counter()
    hosts = [f"api{n}.example.com:8443".encode() for n in range(5)]
    return [
        (now + i * 1e-4, now + i * 1e-4 + 0.012, "GET", f"/v1/items/{i % 200}", 200,
         hosts[i % 5], b"Mozilla/5.0 (X11; Linux x86_64) bench", "10.0.0.7", None, None)
        for i in range(count)
    ]  # fmt: skip


class Config:
    app_version = "1.4.2"


def timed(work, repeat: int) -> float:
    """CPU seconds of this thread per call: other processes' load moves it less."""
    start = time.thread_time()
    for _ in range(repeat):
        work()
    return (time.thread_time() - start) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--aa", action="store_true", help="an A/A run: both sides without")
    args = parser.parse_args()
    batch = records(args.records)
    plain = Client("bench-key", "http://127.0.0.1:9", 0)
    reporting = Client("bench-key", "http://127.0.0.1:9", 0)
    reporting.follow_version(Config())
    reporting.dropped, reporting.failed_sends = 12, 3
    transport = Transport("http://127.0.0.1:9")
    head = "POST {} HTTP/1.1\r\nContent-Length: {}\r\nIdempotency-Key: {}\r\n\r\n"

    def without() -> None:
        (found,) = plain._encode(batch)
        head.format(transport.path, len(found.body), found.batch_id).encode("latin-1")

    def with_reports() -> None:
        if args.aa:
            (found,) = reporting._encode(batch)
            head.format(transport.path, len(found.body), found.batch_id).encode("latin-1")
            return
        (found,) = reporting._encode(batch)
        reporting._deploys.see(reporting._formatter._hosts)
        extra = f"X-Client-Time: {time.time():.3f}\r\n{reporting._drops_header()}"
        (head + extra).format(transport.path, len(found.body), found.batch_id).encode("latin-1")

    ratios, base, ours = [], [], []
    for number in range(args.rounds):
        if number % 2:  # alternate which goes first
            b = timed(with_reports, 10)
            a = timed(without, 10)
        else:
            a = timed(without, 10)
            b = timed(with_reports, 10)
        base.append(a)
        ours.append(b)
        ratios.append(b / a)
    print(f"records a batch: {args.records}, rounds: {args.rounds}")
    print(f"without: {statistics.median(base) * 1e6:,.0f} us CPU a batch (median)")
    print(f"with:    {statistics.median(ours) * 1e6:,.0f} us CPU a batch (median)")
    print(f"ratio with / without: {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
