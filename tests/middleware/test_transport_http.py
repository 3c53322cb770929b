"""The middleware's HTTP client against a scripted server on a real 127.0.0.1 socket.

Every answer form a server or a proxy in front of it may use: Content-Length, chunked,
framed by closing the connection, interim 1xx answers, garbage; and the kept-alive
connection's life: reused while the server allows it, replaced when it says close,
when it sat idle too long, or when the server closed it while idle (the batch is then
sent again at once, with the same Idempotency-Key, on a new connection).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import pytest
import trustme
from api_analytics import transport
from api_analytics.transport import Transport

CREATED = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n"
    b'{"accepted": 1, "rejected": []}'
)


@dataclass
class Received:
    connection: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class ScriptedServer:
    """Answers each request with the next scripted action.

    An action is (answer bytes, then) — then is "keep" (wait for the next request on
    this connection), "close" (close after answering) or "drop" (close without answering).
    """

    actions: deque[tuple[bytes, str]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn, contextlib.suppress(OSError):  # the client may reset the connection
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._answer(conn, number)

    def _answer(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            request = Received(number, head, b"")
            length = int(request.header("Content-Length") or 0)
            while len(buffer) < length:
                buffer += conn.recv(65536)
            request.body, buffer = buffer[:length], buffer[length:]
            self.received.append(request)
            answer, then = self.actions.popleft() if self.actions else (CREATED, "keep")
            if then == "drop":
                return
            conn.sendall(answer)
            if then == "close":
                return

    def close_idle_connections(self) -> None:
        """What a server does to a kept-alive connection whose timeout ran out."""
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._listener.close()
        self.close_idle_connections()


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def post(client: Transport, batch_id: str = "batch-1") -> transport.Outcome:
    return client.post(b"\x1f\x8b-gzip-bytes", batch_id, timeout=5)


def test_request_carries_the_batch_and_its_headers(server):
    client = Transport(server.url + "/base/")
    assert post(client).kind == "sent"
    [request] = server.received
    assert request.head.startswith(b"POST /base/api/log-request HTTP/1.1\r\n")
    assert request.body == b"\x1f\x8b-gzip-bytes"
    assert request.header("Host") == server.url.removeprefix("http://")
    assert request.header("Content-Encoding") == "gzip"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Idempotency-Key") == "batch-1"
    assert request.header("User-Agent").startswith("api-analytics-middleware/")


def test_a_kept_alive_connection_carries_the_next_batches(server):
    client = Transport(server.url)
    assert [post(client, f"b{i}").kind for i in range(3)] == ["sent"] * 3
    assert [r.connection for r in server.received] == [1, 1, 1]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 201 Created\r\nContent-Length: 2\r\n\r\n{}",
        # A body framed by the end of the connection.
        b'HTTP/1.1 201 Created\r\n\r\n{"accepted": 1, "rejected": [{"index": 0}]}',
    ],
)
def test_a_new_connection_when_the_server_does_not_keep_it(server, answer):
    server.actions.extend([(answer, "close"), (answer, "close")])
    client = Transport(server.url)
    outcomes = [post(client), post(client)]
    assert [o.kind for o in outcomes] == ["sent", "sent"]
    assert [r.connection for r in server.received] == [1, 2]
    if b"rejected" in answer:
        assert outcomes[0].rejected == 1


def test_a_connection_closed_while_idle_is_replaced_and_the_batch_sent_once(server):
    client = Transport(server.url)
    assert post(client, "first").kind == "sent"
    server.close_idle_connections()  # the server's keep-alive timeout ran out
    assert post(client, "second").kind == "sent"
    assert [(r.connection, r.header("Idempotency-Key")) for r in server.received] == [
        (1, "first"),
        (2, "second"),
    ]


def test_a_connection_idle_too_long_is_not_reused(server, monkeypatch):
    monkeypatch.setattr(transport, "KEEPALIVE_IDLE", 0.0)
    client = Transport(server.url)
    post(client)
    post(client)
    assert [r.connection for r in server.received] == [1, 2]


def test_chunked_answer_is_read_whole_and_the_connection_kept(server):
    body = b'{"message": "unknown API key"}'
    chunked = (
        b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (10, body[:10])
        + b"%x;ext=1\r\n%s\r\n" % (len(body) - 10, body[10:])
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    server.actions.append((chunked, "keep"))
    client = Transport(server.url)
    refused = post(client)
    assert (refused.kind, refused.status, refused.detail) == ("refused", 401, "unknown API key")
    assert post(client).kind == "sent"
    assert [r.connection for r in server.received] == [1, 1]


def test_interim_answers_are_skipped(server):
    server.actions.append((b"HTTP/1.1 100 Continue\r\n\r\n" + CREATED, "keep"))
    assert post(Transport(server.url)).kind == "sent"


def test_retry_after_of_a_429_is_read(server):
    server.actions.append(
        (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", "keep")
    )
    outcome = post(Transport(server.url))
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 429, 7.0)


@pytest.mark.parametrize(
    ("answer", "then", "detail"),
    [
        (b"", "drop", "ConnectionClosed"),  # a fresh connection closed without an answer
        (b"hello\r\n\r\n", "close", "BadAnswer"),
        (b"HTTP/1.1 2xx Fine\r\n\r\n", "close", "BadAnswer"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: -4\r\n\r\n", "close", "BadAnswer"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: 90\r\n\r\n{}", "close", "ConnectionClosed"),
        (b"HTTP/1.1 201 Created\r\nX: " + b"y" * 70_000, "close", "BadAnswer"),
    ],
)
def test_broken_answers_mean_retry(server, answer, then, detail):
    server.actions.append((answer, then))
    outcome = post(Transport(server.url))
    assert (outcome.kind, outcome.detail) == ("retry", detail)


def test_a_long_body_is_cut_and_the_connection_not_reused(server):
    big = b'{"message": "' + b"x" * 100_000 + b'"}'
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    server.actions.append((answer, "keep"))
    client = Transport(server.url)
    refused = post(client)
    assert refused.kind == "refused" and len(refused.detail) <= 201
    post(client)
    assert [r.connection for r in server.received] == [1, 2]


def test_connection_refused_means_retry():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        outcome = post(Transport(f"http://127.0.0.1:{port}"))
    assert (outcome.kind, outcome.detail) == ("retry", "ConnectionRefusedError")


def test_a_server_that_never_answers_times_out_and_means_retry():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepted by the kernel, never read or answered
        client = Transport(f"http://127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        outcome = client.post(b"\x1f\x8b-gzip-bytes", "batch-1", timeout=0.3)
        waited = time.monotonic() - started
    assert (outcome.kind, outcome.detail) == ("retry", "TimeoutError")
    assert 0.25 <= waited < 3
    assert client._sock is None  # a connection in an unknown state is never reused


def test_https_with_a_verified_certificate(tmp_path, monkeypatch):
    authority = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(tls)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = ScriptedServer(tls=tls)
    try:
        untrusted = post(Transport(server.url))  # the system's CAs do not know this one
        assert (untrusted.kind, untrusted.detail) == ("retry", "SSLCertVerificationError")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        client = Transport(server.url)
        assert [post(client, "a").kind, post(client, "b").kind] == ["sent", "sent"]
        assert [r.header("Idempotency-Key") for r in server.received] == ["a", "b"]
        assert server.received[0].connection == server.received[1].connection  # kept alive
    finally:
        server.stop()
