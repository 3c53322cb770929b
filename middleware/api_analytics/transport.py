"""One HTTP POST of an encoded batch to the server, and what its answer means.

A small HTTP/1.1 client on a plain socket rather than `http.client`: the flusher shares
a core with the host API, and `http.client` spends about four times the CPU on a POST
(building headers one call at a time, parsing the answer's headers with the email
parser). It sends the request in one write, reads the status line, the headers and a
body framed by Content-Length, chunked encoding or the end of the connection, and keeps
the connection for the next batch when the server allows it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import monotonic, time
from urllib.parse import urlsplit

from . import __version__

INGEST_PATH = "/api/log-request"
DEPLOYS_PATH = "/api/deploys"
_MAX_ANSWER_BYTES = 64 * 1024
_MAX_HEAD_BYTES = 64 * 1024
_MAX_RETRY_AFTER = 3600.0
# A kept-alive connection is reused only if it has been idle for less than this: below
# the shortest common server keep-alive timeout (gunicorn's 2 s), so the server rarely
# closes it under us. When it has, the batch is sent again at once on a new connection.
KEEPALIVE_IDLE = 1.5
_USER_AGENT = f"api-analytics-middleware/{__version__}"
# Linux: acknowledge the answer's first segment at once. A server that writes the status
# and headers, then the body, in two writes with Nagle's algorithm on (Python's
# http.server does; gunicorn does not) otherwise holds the body back until our delayed
# ACK fires, 40 ms later: against bench/middleware_sink.py (http.server), 44 ms and
# 330 us of the flusher's CPU per POST without it, 0.26 ms and 60-75 us with it.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


@dataclass(frozen=True)
class Outcome:
    """What to do with a batch after one attempt.

    kind is "sent", "retry" (connection error, 5xx, 408, 429), "too_large" (413) or
    "refused" (any other answer: the batch will never be accepted as it is).
    """

    kind: str
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    rejected: int = 0


class BadAnswer(ValueError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _Stale(Exception):
    """A reused connection was closed by the server before it answered."""


class Transport:
    """Posts gzip-compressed JSON bodies to `{server_url}/api/log-request`, and a deploy
    to `{server_url}/api/deploys`.

    Used by one thread at a time (the flusher, or the exiting interpreter's own).
    """

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("server_url must be an http:// or https:// URL with a host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        port = parts.port  # may raise ValueError for a bad port: callers validate
        self._port = port or (443 if self._https else 80)
        self.path = parts.path.rstrip("/") + INGEST_PATH
        self.deploys_path = parts.path.rstrip("/") + DEPLOYS_PATH
        self._ssl_context = ssl.create_default_context() if self._https else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if port is None else f"{host}:{port}"
        self._sock: socket.socket | None = None
        self._idle_since = 0.0

    def close(self) -> None:
        """Close a kept-alive connection (after a fork: the child's copy only)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def post(self, body: bytes, batch_id: str, timeout: float, report: str = "") -> Outcome:
        """Send one gzip body; never raises for network or server trouble.

        Each attempt carries the client's clock (X-Client-Time, for the server's skew
        figure) and `report`: more header lines (the drop counters), each ending CRLF.
        """
        request = (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: {self._host_header}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Encoding: gzip\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"User-Agent: {_USER_AGENT}\r\n"
            f"X-Client-Time: {time():.3f}\r\n{report}"
            # Stable across retries of the same batch, so the server de-duplicates.
            f"Idempotency-Key: {batch_id}\r\n\r\n"
        ).encode("latin-1") + body
        return self._send(request, timeout)

    def post_deploy(self, body: bytes, api_key: str, timeout: float) -> Outcome:
        """POST a deploy (JSON) with the key in the X-AUTH-TOKEN header, never in the URL."""
        request = (
            f"POST {self.deploys_path} HTTP/1.1\r\n"
            f"Host: {self._host_header}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"User-Agent: {_USER_AGENT}\r\n"
            f"X-AUTH-TOKEN: {api_key}\r\n\r\n"
        ).encode("latin-1") + body
        return self._send(request, timeout)

    def _send(self, request: bytes, timeout: float) -> Outcome:
        if self._sock is not None and monotonic() - self._idle_since >= KEEPALIVE_IDLE:
            self.close()
        try:
            try:
                return self._exchange(request, timeout)
            except _Stale:
                self.close()
                return self._exchange(request, timeout)  # a new connection: never stale
        except (OSError, ValueError) as exc:
            self.close()
            return Outcome("retry", detail=type(exc).__name__)  # the class only: no addresses

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _exchange(self, request: bytes, timeout: float) -> Outcome:
        reused = self._sock is not None
        sock = self._sock if reused else self._connect(timeout)
        self._sock = None
        reader = _Reader(sock)
        try:
            sock.settimeout(timeout)
            try:
                sock.sendall(request)
                status, headers, version = reader.head()
            except ConnectionError as exc:
                if reused and not reader.received:
                    raise _Stale from exc  # closed while idle: the server never read it
                raise
            answer, complete = reader.body(status, headers)
        except BaseException:
            sock.close()
            raise
        keep = (
            complete
            and version == "HTTP/1.1"
            and "close" not in headers.get("connection", "").lower()
        )
        if keep:
            self._sock = sock
            self._idle_since = monotonic()
        else:
            sock.close()
        return classify(status, headers.get("retry-after"), answer)


class ConnectionClosed(ConnectionError):
    """The connection ended before a whole answer arrived."""


class _Reader:
    """Buffered reads of one HTTP answer from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self.received = False  # whether any byte of the answer has arrived

    def _fill(self) -> bool:
        if _QUICKACK is not None:  # the kernel clears it again after a while: set each time
            self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        data = self._sock.recv(65536)
        if not data:
            return False
        self.received = True
        self._buffer += data
        return True

    def _until(self, marker: bytes, limit: int) -> bytes:
        while True:
            end = self._buffer.find(marker)
            if end >= 0:
                part, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
                return part
            if len(self._buffer) > limit:
                raise BadAnswer("answer headers too long")
            if not self._fill():
                raise ConnectionClosed("connection closed before the answer was complete")

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._fill():
                raise ConnectionClosed("connection closed before the answer was complete")
        part, self._buffer = self._buffer[:count], self._buffer[count:]
        return part

    def head(self) -> tuple[int, dict[str, str], str]:
        """Status, lower-cased headers and HTTP version, past any 1xx interim answer."""
        while True:
            lines = self._until(b"\r\n\r\n", _MAX_HEAD_BYTES).decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not (len(code) == 3 and code.isdigit()):
                raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    name = name.strip().lower()
                    value = value.strip()
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
            return status, headers, version

    def body(self, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
        """Up to _MAX_ANSWER_BYTES of the body, and whether the connection can be reused
        (the whole body was read and its end was framed)."""
        if status in (101, 204, 304):
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length.split(",")[0])
            except ValueError:
                raise BadAnswer("bad Content-Length in the answer") from None
            if size < 0:
                raise BadAnswer("bad Content-Length in the answer")
            if size > _MAX_ANSWER_BYTES:
                return self._exactly(_MAX_ANSWER_BYTES), False
            return self._exactly(size), True
        # Framed by the end of the connection.
        while len(self._buffer) <= _MAX_ANSWER_BYTES and self._fill():
            pass
        return self._buffer[:_MAX_ANSWER_BYTES], False

    def _chunked(self) -> tuple[bytes, bool]:
        parts = []
        kept = 0
        while True:
            line = self._until(b"\r\n", 1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise BadAnswer("bad chunk size in the answer") from None
            if size == 0:
                while self._until(b"\r\n", _MAX_HEAD_BYTES):  # trailers, up to a blank line
                    pass
                return b"".join(parts), True
            if kept + size > _MAX_ANSWER_BYTES:
                parts.append(self._exactly(min(size, _MAX_ANSWER_BYTES - kept)))
                return b"".join(parts), False
            parts.append(self._exactly(size))
            kept += size
            self._exactly(2)  # the CRLF after the chunk


def classify(status: int, retry_after: str | None, answer: bytes) -> Outcome:
    """Map a server answer onto what the flusher should do with the batch."""
    if 200 <= status < 300:
        return Outcome("sent", status, rejected=_rejected_count(answer))
    if status == 429 or status == 408 or status >= 500:
        return Outcome("retry", status, retry_after=parse_retry_after(retry_after))
    if status == 413:
        return Outcome("too_large", status, detail=_message(answer))
    return Outcome("refused", status, detail=_message(answer))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _decode_answer(answer: bytes) -> object:
    try:
        return json.loads(answer)
    except ValueError:
        return None


def _message(answer: bytes) -> str:
    """The server's `message`, else the start of its answer, kept short for a log line."""
    data = _decode_answer(answer)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    else:
        text = answer.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _rejected_count(answer: bytes) -> int:
    data = _decode_answer(answer)
    if isinstance(data, dict) and isinstance(data.get("rejected"), list):
        return len(data["rejected"])
    return 0
