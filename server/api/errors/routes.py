"""Errors: a key's error groups (exceptions grouped by fingerprint) with their counts over a
period, one group with its latest occurrences, and its state (open, resolved, ignored)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import update

from server.api.base import Blueprint
from server.api.errors.schemas import (
    ErrorGroupDetailSchema,
    ErrorGroupSchema,
    ErrorsQuerySchema,
    GroupQuerySchema,
    StateSchema,
)
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine, utcnow
from server.models import error_groups
from server.rules import epoch_micros
from server.stats import errors as error_stats
from server.stats.filters import Filters, window_for

log = logging.getLogger(__name__)
blp = Blueprint("errors", __name__, description="Error groups")

NOT_FOUND = "No such error group for this key."


def moment(micros) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(int(micros) / 1e6, UTC)


def described(row: dict, trend) -> dict:
    """A group as the API answers it, from stats.errors.groups' table row."""
    return {
        "id": int(row["id"]),
        "type": row["type"],
        "message": row["message"],
        "frame": row["frame"],
        "route": row["route"],
        "state": row["state"],
        "first_seen": moment(row["first_seen"]),
        "last_seen": moment(row["last_us"]),
        "regressed_at": moment(row["regressed_at"]),
        "regressions": int(row["regressions"]),
        "resolved_at": moment(row["resolved_at"]),
        "count": int(row["n"]),
        "users": int(row["users"]),
        "consumers": int(row["consumers"]),
        "statuses": [int(s) for s in row["statuses"]],
        "versions": list(row["versions"]),
        "trend": [{"t": int(t), "n": int(n)} for t, n in trend],
    }


def _as_stored(stored: dict) -> dict:
    """A group with no occurrence in the period: as stored, counts zero."""
    return {**stored, "first_seen": moment(stored["first_seen"]),
            "last_seen": moment(stored["last_seen"]),
            "regressed_at": moment(stored["regressed_at"]),
            "resolved_at": moment(stored["resolved_at"]), "count": 0, "users": 0,
            "consumers": 0, "statuses": [], "versions": [], "trend": []}  # fmt: skip


def _groups(key_id: int, period: str, sort: str = "count", only: int | None = None) -> list:
    filters = Filters(period=period)
    if only is not None:
        filters = filters.with_click("error_group", str(only))
    found = error_stats.groups(key_id, filters, window_for(period), sort)
    trends: dict = {}
    for gid, t, n in found.trend.itertuples(index=False):
        trends.setdefault(int(gid), []).append((t, n))
    return [
        described(row, trends.get(int(row["id"]), [])) for row in found.table.to_dict("records")
    ]


@blp.route("/errors")
class Errors(MethodView):
    @blp.arguments(ErrorsQuerySchema, location="query")
    @blp.response(200, ErrorGroupSchema(many=True))
    @blp.alt_response(400, schema=ErrorSchema, description="An unknown or malformed parameter.")
    @blp.keyed()
    def get(self, args):
        """The key's error groups with an occurrence in the period, busiest first

        Counts, users and consumers are exact over the period; `sort` by count, users,
        consumers or last_seen; `state` keeps one state only.
        """
        key_id = require_key()
        groups = _groups(key_id, args["period"], args["sort"])
        if args.get("state"):
            groups = [g for g in groups if g["state"] == args["state"]]
        return groups


@blp.route("/errors/<int(max=9223372036854775807):group_id>")
class ErrorById(MethodView):
    @blp.arguments(GroupQuerySchema, location="query")
    @blp.response(200, ErrorGroupDetailSchema)
    @blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
    @blp.keyed()
    def get(self, args, group_id):
        """One error group, with its latest occurrences in the period

        Each occurrence has its request (method, path, status, consumer, ...), the
        exception's message and stack, and, where captured, the masked request and
        response.
        """
        key_id = require_key()
        stored = error_stats.group(key_id, group_id)
        if stored is None:
            abort(404, message=NOT_FOUND)
        found = _groups(key_id, args["period"], only=group_id)
        answer = found[0] if found else _as_stored(stored)
        period = args["period"]
        occurrences = error_stats.occurrences(
            key_id, group_id, Filters(period=period), window_for(period), args["limit"]
        )
        answer["occurrences"] = [
            {**o, "at": moment(o["at_us"]),
             "stack": [dict(zip(("file", "line", "function", "in_app"), f, strict=True))
                       for f in o["stack"]]}
            for o in occurrences
        ]  # fmt: skip
        return answer

    @blp.arguments(StateSchema)
    @blp.response(200, ErrorGroupSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="Not a state.")
    @blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
    @blp.keyed()
    def patch(self, body, group_id):
        """Set a group's state: open, resolved or ignored

        A resolved group that occurs again is opened again, marked as a regression.
        """
        key_id = require_key()
        values = {"state": body["state"]}
        if body["state"] == "resolved":
            values["resolved_at"] = epoch_micros(utcnow())
        with get_engine().begin() as conn:
            changed = conn.execute(
                update(error_groups)
                .where(error_groups.c.key_id == key_id, error_groups.c.id == group_id)
                .values(**values)
            ).rowcount
        if not changed:
            abort(404, message=NOT_FOUND)
        log.info("key id=%s set error group id=%s %s", key_id, group_id, body["state"])
        found = _groups(key_id, "all", only=group_id)
        return found[0] if found else _as_stored(error_stats.group(key_id, group_id))
