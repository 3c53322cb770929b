"""A stand-in ingest server for the middleware benchmark: answers 201 at once, counts rows.

`python bench/middleware_sink.py PORT`; `GET /count` returns {"rows": n, "posts": n}.

It shares a core with wrk, so it must stay cheap: a JSON parse of every batch stalled
wrk's event loop for milliseconds and showed up as the measured server's p99. Rows are
counted by their one `"created_at":` key (a quote inside a string value is escaped,
so it cannot fake one).
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"rows": 0, "posts": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        rows = body.count(b'"created_at":')
        with lock:
            counts["rows"] += rows
            counts["posts"] += 1
        self._answer(201, {"accepted": rows, "rejected": []})

    def do_GET(self):  # noqa: N802
        with lock:
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
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
