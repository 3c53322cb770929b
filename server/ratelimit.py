"""Rate limits, all through Flask-Limiter: Redis storage in production (every web process
counts together), memory in the embedded mode (one process). And the answer (429) to a key
whose engine work is at its cap in this process (server.lake.fair).

A limit the view can only name once it has read the request (ingest's is per key, known
after the key is looked up) is checked with `hit`, on the same limiter and storage.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute

from server.lake.fair import EngineBusy

log = logging.getLogger(__name__)


def init_limiter(app: Flask, settings) -> Limiter:
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.REDIS_URL or "memory://",
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2}
        if settings.REDIS_URL
        else {},
        # A limiter that cannot reach its storage lets requests through: refusing data
        # because the counter is down would lose it.
        swallow_errors=True,
        headers_enabled=False,
    )
    app.extensions["rate_limiter"] = limiter
    app.register_error_handler(EngineBusy, _engine_busy)
    return limiter


def _engine_busy(exc: EngineBusy):
    """One key's engine work running and waiting at its cap (server.lake.fair): 429."""
    from flask import jsonify

    answer = jsonify(code=429, status="Too Many Requests", message=str(exc))
    answer.status_code = 429
    answer.headers["Retry-After"] = str(exc.retry_after)
    return answer


def hit_per_minute(limit: int, *identifiers: str) -> int | None:
    """Count one hit against `limit` a minute for `identifiers` (a fixed window); the
    seconds until the window ends when the limit is exceeded, else None. A limit of 0
    is off; a storage that does not answer counts nothing (logged)."""
    return hit(RateLimitItemPerMinute(limit), *identifiers) if limit else None


def key_creation_wait() -> int | None:
    """Count one key made for this request's client address against KEY_CREATE_PER_HOUR
    (the API, the dashboard, invitations alike; an operator's are not counted); the
    seconds to wait when over it, else None."""
    limit = current_app.config["SETTINGS"].KEY_CREATE_PER_HOUR
    if not limit:
        return None
    return hit(RateLimitItemPerHour(limit), "keys-create", get_remote_address())


def hit(item: RateLimitItem, *identifiers: str) -> int | None:
    """One hit against `item` for `identifiers`: None when allowed, else the seconds until
    its window ends (what Retry-After says)."""
    limiter = current_app.extensions["rate_limiter"]
    try:
        if limiter.limiter.hit(item, *identifiers):
            return None
        reset, _remaining = limiter.limiter.get_window_stats(item, *identifiers)
    except Exception as exc:
        log.warning("rate limiter unavailable (%s); not limiting", exc)
        return None
    return max(1, int(reset - time.time()) + 1)
