"""Liveness of the parts the service needs: the database and the job queue."""

from __future__ import annotations

import logging

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import func, select, text

from server.api.base import Blueprint
from server.db import as_utc, get_engine, utcnow
from server.ingest.backlog import MAX_ATTEMPTS, count_failed
from server.models import ingest_batches
from server.queue import get_queue

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(Schema):
    status = fields.String(
        metadata={
            "example": "ok",
            "description": "ok; degraded (serving, but some accepted data needs an operator: "
            "see problems); down (the database or the queue is down: 503)",
        }
    )
    problems = fields.List(
        fields.String(), metadata={"description": "What is wrong and what to do, one a line"}
    )
    database = fields.String(metadata={"example": "ok"})
    queue = fields.String(metadata={"example": "ok"})
    queue_depth = fields.Integer(
        allow_none=True, metadata={"description": "Jobs waiting in every queue; null if unknown"}
    )
    oldest_batch_age_seconds = fields.Float(
        allow_none=True,
        metadata={
            "description": "Age of the oldest staged batch (one the web could not write "
            "itself) no worker has stored yet; null when none waits (or the database is down)"
        },
    )
    unexported_rows = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Stored requests not yet moved into the columnar store's files "
            "(the dashboard counts them already); null if unknown"
        },
    )
    last_export_age_seconds = fields.Float(
        allow_none=True,
        metadata={"description": "Seconds since the export last moved rows into files"},
    )
    failed_batches = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Accepted batches that could not be stored after every retry; "
            "they wait for an operator (`flask --app wsgi batches`). null if unknown"
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


def failed_batches() -> int | None:
    try:
        with get_engine().connect() as conn:
            return count_failed(conn)
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


# Rows waiting longer than this for the export mean no worker runs it.
EXPORT_STALLED_SECONDS = 600


def export_state() -> tuple[int | None, float | None]:
    """(rows waiting for the export, seconds since the last export)."""
    from server.lake import catalog
    from server.lake.models import lake_exports

    try:
        with get_engine().connect() as conn:
            waiting, _oldest = catalog.pending(conn, catalog.exported_id(conn))
            last = conn.execute(select(func.max(lake_exports.c.committed_at))).scalar()
    except Exception:
        return None, None
    age = None if last is None else round((utcnow() - as_utc(last)).total_seconds(), 1)
    return waiting, age


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A part is down; it is named.")
    def get(self):
        """Check the database and the queue

        Also reports how many jobs wait, how old the oldest unprocessed batch is and how
        many accepted batches could not be stored. The status is 503 only when the
        database or the queue is down; batches waiting for an operator make it
        "degraded" (still 200: the service serves, restarting it would not help).
        """
        report = {"database": check_database(), "queue": check_queue()}
        down = [name for name in ("database", "queue") if report[name] != "ok"]
        report["queue_depth"] = queue_depth() if report["queue"] == "ok" else None
        database_up = report["database"] == "ok"
        report["oldest_batch_age_seconds"] = oldest_batch_age() if database_up else None
        report["failed_batches"] = failed_batches() if database_up else None
        waiting, age = export_state() if database_up else (None, None)
        report["unexported_rows"], report["last_export_age_seconds"] = waiting, age
        problems = [f"the {name} is {report[name]}" for name in down]
        if waiting and age is not None and age > EXPORT_STALLED_SECONDS:
            problems.append(
                f"{waiting} stored requests have waited {age:.0f} s for the export into the "
                "columnar store (the dashboard reads them more slowly meanwhile): is a worker "
                "running? `flask --app wsgi lake export` runs it by hand"
            )
        if report["failed_batches"]:
            problems.append(
                f"{report['failed_batches']} accepted batches could not be stored after "
                f"{MAX_ATTEMPTS} attempts: see `flask --app wsgi batches list`"
            )
        report["status"] = "down" if down else ("degraded" if problems else "ok")
        report["problems"] = problems
        return report, 503 if down else 200
