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

    Otherwise nothing is mounted, so /admin/rq answers 404, and the start-up notes say why.
    """
    settings = app.config["SETTINGS"]
    if settings.embedded_queue or not settings.ADMIN_TOKEN:
        return  # server.runtime.startup's notes say why, once a start
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.REDIS_URL
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    app.before_request(_require_admin_token)


def _require_admin_token() -> Response | None:
    """Every page and asset under /admin/rq needs the token (Basic password or Bearer)."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return None
    if admin_token_ok(request.headers.get("Authorization")):
        return None
    return Response("The RQ dashboard needs the admin token.\n", 401, CHALLENGE)
