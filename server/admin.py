"""Operators' pages: the RQ dashboard at /admin/rq, behind ADMIN_TOKEN."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from server.auth import admin_token_ok

log = logging.getLogger(__name__)

PREFIX = "/admin/rq"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="API Analytics operators", charset="UTF-8"'}


def init_admin(app: Flask) -> None:
    """Mount rq-dashboard when there is a Redis to show and a token to guard it with.

    Otherwise nothing is mounted, so /admin/rq answers 404, and the log says why.
    """
    settings = app.config["SETTINGS"]
    if settings.embedded_queue:
        log.info("no REDIS_URL: jobs run in-process, so there is no RQ dashboard (/admin/rq: 404)")
        return
    if not settings.ADMIN_TOKEN:
        log.warning(
            "ADMIN_TOKEN is not set: the RQ dashboard at %s is off and answers 404; "
            "set ADMIN_TOKEN to turn it on",
            PREFIX,
        )
        return
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.REDIS_URL
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    app.before_request(_require_admin_token)
    log.info("RQ dashboard at %s (HTTP basic: any user name, ADMIN_TOKEN as password)", PREFIX)


def _require_admin_token() -> Response | None:
    """Every page and asset under /admin/rq needs the token (Basic password or Bearer)."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return None
    if admin_token_ok(request.headers.get("Authorization")):
        return None
    return Response("The RQ dashboard needs the admin token.\n", 401, CHALLENGE)
