"""Uptime monitors: which URLs a key has checked on a schedule, and what the checks found."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy.exc import IntegrityError

from server.api.base import Blueprint
from server.api.monitors.schemas import (
    MonitorCreateSchema,
    MonitorSchema,
    PingSchema,
    PingsQuerySchema,
)
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine
from server.keys.api_keys import touch_key
from server.monitors.store import (
    DuplicateMonitor,
    MonitorLimitReached,
    create_monitor,
    delete_monitor,
    list_monitors,
    list_pings,
    owned_monitor,
)
from server.net.urlguard import UnsafeURL, check_url

log = logging.getLogger(__name__)
blp = Blueprint("monitors", __name__, description="Uptime monitors")


NOT_FOUND = "No such monitor for this key."


@blp.route("/monitors")
class Monitors(MethodView):
    @blp.response(200, MonitorSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's monitors, with their latest check and uptime

        Uptime is the percentage of checks in the last 24 hours, 7 days and 30
        days that got a 2xx or 3xx answer; timeouts, refused connections, DNS
        and TLS failures and 4xx/5xx answers count as down.
        """
        key_id = require_key()
        with get_engine().connect() as conn:
            return list_monitors(conn, key_id)

    @blp.arguments(MonitorCreateSchema)
    @blp.response(201, MonitorSchema)
    @blp.alt_response(
        400,
        schema=ErrorSchema,
        description="Not an http(s) URL, longer than 2,048 characters, or its host resolves "
        "to a loopback, private, link-local, multicast, reserved or cloud-metadata address.",
    )
    @blp.keyed()
    @blp.alt_response(
        409,
        schema=ErrorSchema,
        description="The key already has MONITOR_LIMIT monitors, or already monitors this URL "
        "with this method.",
    )
    def post(self, body):
        """Create an uptime monitor

        The URL is requested every MONITOR_INTERVAL_SECONDS (default 300) with a
        10 s timeout, following at most 5 redirects; every outcome is stored.
        """
        key_id = require_key()
        settings = current_app.config["SETTINGS"]
        url, method = body["url"].strip(), body["method"]
        try:
            check_url(url, allow_private=settings.MONITOR_ALLOW_PRIVATE)
        except UnsafeURL as exc:
            abort(400, message=str(exc))
        try:
            with get_engine().begin() as conn:
                monitor = create_monitor(conn, key_id, url, method, settings.MONITOR_LIMIT)
                touch_key(conn, key_id)  # managing monitors is activity, for retention
        except MonitorLimitReached as exc:  # server.keys.caps.CapReached: names the cap
            abort(409, message=str(exc))
        except (DuplicateMonitor, IntegrityError):
            abort(409, message=f"This key already monitors {method} {url}.")
        log.info("key id=%s created monitor id=%s", key_id, monitor["id"])
        return monitor


@blp.route("/monitors/<int:monitor_id>")
class MonitorById(MethodView):
    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
    def delete(self, monitor_id):
        """Delete a monitor and all its checks"""
        key_id = require_key()
        with get_engine().begin() as conn:
            deleted = delete_monitor(conn, key_id, monitor_id)
        if not deleted:
            abort(404, message=NOT_FOUND)
        log.info("key id=%s deleted monitor id=%s", key_id, monitor_id)


@blp.route("/monitors/<int:monitor_id>/pings")
class MonitorPings(MethodView):
    @blp.arguments(PingsQuerySchema, location="query")
    @blp.response(200, PingSchema(many=True))
    @blp.alt_response(400, schema=ErrorSchema, description="An unknown or malformed parameter.")
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
    def get(self, args, monitor_id):
        """A monitor's checks, newest first

        `from` and `to` take a date (a whole UTC day) or an ISO 8601 date-time;
        both ends are inclusive.
        """
        key_id = require_key()
        since = _moment(args.get("since"), end_of_day=False)
        until = _moment(args.get("until"), end_of_day=True)
        if since and until and since > until:
            abort(400, message="'from' is after 'to'.")
        with get_engine().connect() as conn:
            if owned_monitor(conn, key_id, monitor_id) is None:
                abort(404, message=NOT_FOUND)
            return list_pings(conn, monitor_id, since, until, args["limit"])


def _moment(value: date | datetime | None, *, end_of_day: bool) -> datetime | None:
    """A date stands for its first (from) or last (to) instant, in UTC."""
    if value is None or isinstance(value, datetime):
        return value
    start = datetime.combine(value, time.min, tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end_of_day else start
