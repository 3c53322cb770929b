"""Outbound HTTP to hosts a user named (uptime checks, alert webhooks): connections that go
only where the SSRF guard allows, and one deadline for the whole exchange.

Every TCP connection (the first and each redirect's) goes through GuardedBackend, which
resolves the host itself, refuses it if any of its addresses is not allowed, and connects
to the address it checked, so a DNS answer that changes between the check and the
connect cannot slip through.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import httpcore

from server.net import urlguard

Resolver = Callable[[str, int, float], list]


class CheckFailed(Exception):
    """The check ended without a response; `kind` is what the ping records."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self, timeout: float | None = None) -> float:
        """Seconds left (capped by `timeout`); past the deadline the check is a timeout."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise CheckFailed("timeout", "the check took longer than its total timeout")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the check's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        tls = self._stream.start_tls(ssl_context, server_hostname, self._deadline.left(timeout))
        return DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, and only to the ones it checked."""

    def __init__(
        self,
        deadline: Deadline,
        address_allowed: Callable[[urlguard.IPAddress], bool],
        resolver: Resolver,
    ) -> None:
        self._deadline = deadline
        self._allowed = address_allowed
        self._resolve = resolver

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = self._resolve(host, port, self._deadline.left(timeout))
        except urlguard.ResolveError as exc:
            raise CheckFailed("dns", str(exc)) from exc
        refused = [a for a in addresses if not self._allowed(a)]
        if refused:
            raise CheckFailed("blocked address", f"{host} resolves to {refused[0]}")
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    str(address), port, self._deadline.left(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # a ConnectTimeout is not one: it ends the check
                failure = exc  # try the host's next address
                continue
            return DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure


def address_policy(allow_private: bool) -> Callable[[urlguard.IPAddress], bool]:
    if allow_private:
        return lambda _address: True
    return lambda address: urlguard.blocked_reason(address) is None


def guarded_pool(deadline: Deadline, address_allowed, resolver: Resolver = urlguard.resolve):
    """A connection pool whose connections go only where `address_allowed` says."""
    return httpcore.ConnectionPool(
        ssl_context=httpcore.default_ssl_context(),
        network_backend=GuardedBackend(deadline, address_allowed, resolver),
        retries=0,
    )


# Of an answer to a notification only the status matters: at most this much of its body is
# read (a receiver answering 200 with 1.5 GiB grew the sender by 629 MB before), then the
# connection is closed.
MAX_ANSWER_BYTES = 64 * 1024


def guarded_post(
    url: str, body: bytes, headers: list, *, timeout: float, allow_private: bool
) -> int:
    """POST a JSON body within `timeout` seconds in all; the answer's status. At most
    MAX_ANSWER_BYTES of the answer's body are read, then the connection is closed."""
    deadline = Deadline(timeout)
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), float(timeout))
    with (
        guarded_pool(deadline, address_policy(allow_private)) as pool,
        pool.stream(
            "POST",
            request_target(url),
            headers=[(b"Content-Type", b"application/json"), *headers],
            content=body,
            extensions={"timeout": timeouts},
        ) as response,
    ):
        read_at_most(response, MAX_ANSWER_BYTES)
        return response.status


def read_at_most(response, limit: int) -> int:
    """Read up to `limit` bytes of a streamed answer's body (keeping none); how many."""
    seen = 0
    for chunk in response.iter_stream():
        seen += len(chunk)
        if seen >= limit:
            break
    return seen


def request_target(url: str) -> str:
    """The URL in the ASCII form HTTP needs (IDNA host, percent-encoded path and query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise CheckFailed("dns", f"{host!r} is not a valid host name") from exc
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    safe = "/%:@!$&'()*+,;=~-._"
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(parts.path or "/", safe=safe),
            quote(parts.query, safe=safe + "?"),
            "",
        )
    )


def classify(exc: BaseException) -> str:
    """The error kind a ping records for a failed check."""
    if isinstance(exc, CheckFailed):
        return exc.kind
    if isinstance(exc, httpcore.TimeoutException | socket.timeout | TimeoutError):
        return "timeout"
    causes = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(c, ssl.SSLError | ssl.CertificateError) for c in causes):
        return "tls"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if isinstance(exc, httpcore.ConnectError):
        return "connection failed"
    if isinstance(exc, httpcore.RemoteProtocolError):
        return "protocol error"
    if isinstance(exc, httpcore.ReadError | httpcore.WriteError):
        return "connection reset"
    if isinstance(exc, httpcore.UnsupportedProtocol | httpcore.LocalProtocolError):
        return "bad redirect"
    return "error"
