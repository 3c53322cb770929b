"""A local HTTP server on 127.0.0.1 for uptime checks: answers, fails, hangs, drips, redirects."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class TargetServer:
    """Paths:
    /ok 200 · /fail 500 · /hang answers only when released (after the test) ·
    /drip sends its headers a byte at a time · /redirect/N redirects N times, then answers 200 ·
    /loop redirects to itself · /to?url=U redirects to U. Counts the requests per path.
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.hits: Counter = Counter()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        # Checks hang up early on purpose (timeouts, HEAD); that is not an error here.
        self.httpd.handle_error = lambda request, client_address: None
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls_context else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> TargetServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                parts = urlsplit(self.path)
                path = parts.path
                server.hits[path] += 1
                if path == "/ok":
                    self._answer(200)
                elif path == "/fail":
                    self._answer(500)
                elif path == "/hang":
                    server.release.wait(60)
                    self._answer(200)
                elif path == "/drip":
                    self._drip()
                elif path.startswith("/redirect/"):
                    left = int(path.rsplit("/", 1)[1])
                    if left == 0:
                        self._answer(200)
                    else:
                        self._redirect(f"/redirect/{left - 1}")
                elif path == "/loop":
                    self._redirect("/loop")
                elif path == "/to":
                    self._redirect(parse_qs(parts.query)["url"][0])
                else:
                    self._answer(404)

            def _answer(self, status: int) -> None:
                body = b"hello\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _drip(self) -> None:
                # Each byte comes well within any read timeout; only a total deadline stops it.
                line = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200
                for byte in line:
                    if server.release.is_set():
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the check gave up, as it should
                    time.sleep(0.05)

        return Handler


def self_signed_context(workdir: Path) -> ssl.SSLContext | None:
    """A server TLS context with a throwaway self-signed certificate (None without openssl)."""
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
