"""One uptime check of a monitored URL: guarded connections (server.net.http), one total
deadline, manual redirects."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from server.net import urlguard
from server.net.http import (
    CheckFailed,
    Deadline,
    Resolver,
    address_policy,
    classify,
    guarded_pool,
    request_target,
)

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "api-analytics-uptime/1.0 (+self-hosted API Analytics)"


@dataclass(frozen=True)
class Outcome:
    """What a check found: a status and response time, or an error kind."""

    status: int | None
    response_time: int | None  # milliseconds to the final response's headers
    error: str | None


def probe(
    url: str,
    method: str = "GET",
    *,
    timeout: float = 10.0,
    allow_private: bool = False,
    address_allowed: Callable[[urlguard.IPAddress], bool] | None = None,
    resolver: Resolver = urlguard.resolve,
) -> Outcome:
    """Request `url` once (following up to MAX_REDIRECTS redirects) and say what happened.

    Never raises for anything the remote end does; the outcome names it.
    """
    if address_allowed is None:
        address_allowed = address_policy(allow_private)
    deadline = Deadline(timeout)
    started = time.perf_counter()
    pool = guarded_pool(deadline, address_allowed, resolver)
    try:
        status = _follow(pool, url, method, deadline)
    except Exception as exc:
        return Outcome(None, None, classify(exc))
    finally:
        pool.close()
    return Outcome(status, round((time.perf_counter() - started) * 1000), None)


def _follow(pool, url: str, method: str, deadline: Deadline) -> int:
    for _hop in range(MAX_REDIRECTS + 1):
        target = request_target(url)
        left = deadline.left()
        timeouts = {"connect": left, "read": left, "write": left, "pool": left}
        headers = [(b"User-Agent", USER_AGENT.encode()), (b"Accept", b"*/*")]
        with pool.stream(method, target, headers=headers, extensions={"timeout": timeouts}) as r:
            # The status is all a check needs, so the body is never read.
            location = _header(r.headers, b"location")
            if r.status not in REDIRECTS or location is None:
                return r.status
        url = urljoin(url, location.decode("latin-1").strip())
        try:
            urlguard.validate_url(url)
        except urlguard.UnsafeURL as exc:
            raise CheckFailed("bad redirect", str(exc)) from exc
        if r.status == 303 and method != "HEAD":
            method = "GET"
    raise CheckFailed("too many redirects", f"more than {MAX_REDIRECTS}")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
