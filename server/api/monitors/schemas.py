"""Schemas of the monitors API: a monitor, its uptime and its pings (checks)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from server.net.urlguard import MAX_URL_LENGTH

METHODS = ("GET", "HEAD")


class MonitorCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        # No "example" here: API fuzzers replay examples, and this one would make the
        # guard resolve a real host name.
        metadata={
            "description": "An http:// or https:// URL whose host has public addresses "
            "only, such as https://api.example.com/health"
        },
    )
    method = fields.String(
        load_default="GET",
        validate=validate.OneOf(METHODS),
        metadata={"description": "GET (default) or HEAD"},
    )


class PingSchema(Schema):
    created_at = fields.DateTime(metadata={"description": "When the check ran (UTC)"})
    status = fields.Integer(
        allow_none=True, metadata={"description": "HTTP status; null when nothing answered"}
    )
    response_time = fields.Integer(
        allow_none=True, metadata={"description": "Milliseconds until the response headers"}
    )
    error = fields.String(
        allow_none=True,
        metadata={
            "description": "Why there is no status: timeout, connection refused, dns, tls, "
            "connection failed, connection reset, too many redirects, bad redirect, "
            "blocked address (the SSRF guard refused the address at check time), "
            "protocol error or error",
            "example": None,
        },
    )


def _window(name: str, span: str) -> fields.Float:
    return fields.Float(
        attribute=name,
        data_key=name,
        allow_none=True,
        metadata={"description": f"Percent of checks up in the last {span}; null without checks"},
    )


class UptimeSchema(Schema):
    day = _window("24h", "24 hours")
    week = _window("7d", "7 days")
    month = _window("30d", "30 days")


class MonitorSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    method = fields.String()
    created_at = fields.DateTime()
    latest = fields.Nested(
        PingSchema, allow_none=True, metadata={"description": "The latest check, if any"}
    )
    uptime = fields.Nested(
        UptimeSchema,
        metadata={"description": "A check is up when it answered 2xx or 3xx"},
    )


class Moment(fields.String):
    """An ISO 8601 date or date-time; one without an offset is UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError(
                "Use an ISO 8601 date (2026-01-31) or date-time (2026-01-31T12:00:00Z)."
            ) from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PingsQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    since = Moment(
        data_key="from",
        metadata={"description": "Oldest check to include (a date means its start), inclusive"},
    )
    until = Moment(
        data_key="to",
        metadata={"description": "Newest check to include (a date means its end), inclusive"},
    )
    limit = fields.Integer(
        load_default=1000,
        validate=validate.Range(min=1, max=10_000),
        metadata={"description": "At most this many checks (default 1,000)"},
    )
