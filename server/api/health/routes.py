"""Liveness of the parts the service needs: the database and the job queue."""

from __future__ import annotations

import logging

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text

from server.api.base import Blueprint
from server.db import get_engine
from server.queue import get_queue

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(Schema):
    database = fields.String(metadata={"example": "ok"})
    queue = fields.String(metadata={"example": "ok"})


def check_database() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        log.warning("health: database down: %s", exc)
        return f"down: {type(exc).__name__}"


def check_queue() -> str:
    try:
        get_queue().ping()
        return "ok"
    except Exception as exc:
        log.warning("health: queue down: %s", exc)
        return f"down: {type(exc).__name__}"


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A part is down; it is named.")
    def get(self):
        """Check the database and the queue"""
        report = {"database": check_database(), "queue": check_queue()}
        status = 200 if all(v == "ok" for v in report.values()) else 503
        return report, status
