"""Liveness of the parts the service needs: the database and the job queue."""

from __future__ import annotations

import logging

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import func, select, text

from server.api.base import Blueprint
from server.db import as_utc, get_engine, utcnow
from server.models import ingest_batches
from server.queue import get_queue

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(Schema):
    database = fields.String(metadata={"example": "ok"})
    queue = fields.String(metadata={"example": "ok"})
    queue_depth = fields.Integer(
        allow_none=True, metadata={"description": "Jobs waiting in every queue; null if unknown"}
    )
    oldest_batch_age_seconds = fields.Float(
        allow_none=True,
        metadata={
            "description": "Age of the oldest accepted batch no worker has processed yet; "
            "null when none waits (or the database is down)"
        },
    )


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


def queue_depth() -> int | None:
    try:
        return get_queue().depth()
    except Exception:
        return None


def oldest_batch_age() -> float | None:
    """Seconds since the oldest unprocessed batch was accepted: a growing figure means stuck."""
    try:
        with get_engine().connect() as conn:
            oldest = conn.execute(select(func.min(ingest_batches.c.created_at))).scalar()
    except Exception:
        return None
    if oldest is None:
        return None
    return round((utcnow() - as_utc(oldest)).total_seconds(), 1)


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A part is down; it is named.")
    def get(self):
        """Check the database and the queue

        Also reports how many jobs wait and how old the oldest unprocessed batch is.
        The status is 503 only when the database or the queue is down.
        """
        report = {"database": check_database(), "queue": check_queue()}
        status = 200 if all(v == "ok" for v in report.values()) else 503
        report["queue_depth"] = queue_depth() if report["queue"] == "ok" else None
        report["oldest_batch_age_seconds"] = (
            oldest_batch_age() if report["database"] == "ok" else None
        )
        return report, status
