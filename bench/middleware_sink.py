"""A stand-in ingest server for the middleware benchmark: answers 201 at once, counts rows.

`python bench/middleware_sink.py PORT`; `GET /count` returns {"rows": n, "posts": n}.

It shares a core with wrk, whose clock measures the latencies, so it must never keep wrk
waiting: a JSON parse of every batch stalled wrk's event loop for milliseconds and showed
up as the measured server's p99. So it runs under SCHED_IDLE (only when wrk's core has
nothing else to do), answers a POST before looking at it, and unpacks what it stored
only when asked for the count. Rows are counted by their one `"created_at":` key (a
quote inside a string value is escaped, so it cannot fake one).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"rows": 0, "posts": 0}
received: list[tuple[bytes, bool]] = []  # bodies not counted yet, and whether gzipped
lock = threading.Lock()


def count_received() -> None:
    """Count the rows of the bodies received since the last count (under `lock`)."""
    for body, gzipped in received:
        counts["rows"] += (gzip.decompress(body) if gzipped else body).count(b'"created_at":')
    received.clear()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server (gunicorn gthread) offers

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            received.append((body, self.headers.get("Content-Encoding") == "gzip"))
            counts["posts"] += 1
        self._answer(201, {"accepted": -1, "rejected": []})

    def do_GET(self):  # noqa: N802
        with lock:
            count_received()
            self._answer(200, dict(counts))

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
