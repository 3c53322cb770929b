"""Cross-site request forgery: a token in every state-changing form, and a same-origin check.

The dashboard's forms (sign-in, sign-out) carry a token bound to the browser's session,
so a foreign page cannot submit them, not even to sign a visitor in with the
attacker's key (login CSRF). Every state-changing request to a page that a browser
authenticates by itself (a session cookie, remembered HTTP basic credentials: the
dashboard and /admin/rq) must also come from our own origin when the browser says
where it comes from. The JSON API under /api/ is exempt: it takes its credentials
from a header or the body, never from anything a browser adds on its own.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, request, session

log = logging.getLogger(__name__)

FIELD = "csrf_token"
SESSION_NONCE = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIX = "/api/"


def csrf_token() -> str:
    """The token for this browser's forms (made on first use, kept in its session)."""
    token = session.get(SESSION_NONCE)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_NONCE] = token
    return token


def new_csrf_token() -> str:
    """A fresh token, e.g. after sign-in, so one seen before it is of no use after."""
    session.pop(SESSION_NONCE, None)
    return csrf_token()


def csrf_ok(submitted: str | None) -> bool:
    expected = session.get(SESSION_NONCE)
    if not isinstance(expected, str) or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def init_same_origin(app: Flask) -> None:
    app.before_request(_refuse_cross_origin)


def cross_origin_reason() -> str | None:
    """Why this request is not from our own origin, or None when it is (or cannot tell).

    Browsers send Origin with every cross-origin POST and Sec-Fetch-Site with every
    request; a client that sends neither is not a browser, so it has no cookies or
    remembered credentials riding along to abuse.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null":
            return "Origin is null (a sandboxed or privacy-redirected page)"
        parts = urlsplit(origin)
        if _host(parts.netloc, parts.scheme) != _host(request.host, request.scheme):
            return f"Origin {origin} is not this server ({request.host})"
        return None
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return "Sec-Fetch-Site is cross-site"
    return None


def _host(netloc: str, scheme: str) -> str:
    """host[:port] without the scheme's default port. The scheme itself is not compared:
    a proxy that terminates TLS shows us http while the browser says https."""
    netloc = netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc.removesuffix(default)
    return netloc


def _refuse_cross_origin() -> Response | None:
    if request.method in SAFE_METHODS or request.path.startswith(EXEMPT_PREFIX):
        return None
    reason = cross_origin_reason()
    if reason is None:
        return None
    from server.keys.shares import redact_share_paths

    path = redact_share_paths(request.path)
    log.warning("refused a cross-origin %s %s: %s", request.method, path, reason)
    return Response(
        f"Refused: this {request.method} did not come from this server's own pages ({reason}).\n"
        "Behind a reverse proxy, pass the original Host header (or X-Forwarded-Host with "
        "TRUST_PROXY=1).\n",
        status=403,
        mimetype="text/plain",
    )
