"""Query parameters and row shape of the data API (the hosted service's names)."""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from server.rules import canonical_ip

ALIASES = {"ip": "ipAddress", "userID": "user_id", "userId": "user_id"}
DATE_ERROR = "not a valid date: expected YYYY-MM-DD, e.g. 2026-11-27"


def _date(description: str) -> fields.Date:
    return fields.Date(
        error_messages={"invalid": DATE_ERROR}, metadata={"description": description}
    )


class DataQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "50,000 rows a page"},
    )
    date = _date("One UTC day, YYYY-MM-DD")
    dateFrom = _date("First UTC day, inclusive (YYYY-MM-DD); not after dateTo")
    dateTo = _date("Last UTC day, inclusive (YYYY-MM-DD)")
    hostname = fields.String(validate=validate.Length(max=255))
    ipAddress = fields.String(metadata={"description": "Alias: ip"})
    status = fields.Integer(validate=validate.Range(100, 599))
    location = fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{2}$", error="must be a two-letter country code")
    )
    user_id = fields.String(
        validate=validate.Length(max=255), metadata={"description": "Aliases: userID, userId"}
    )
    consumer = fields.String(
        validate=validate.Length(max=255),
        metadata={"description": "A consumer's id (docs/capture.md)"},
    )
    consumer_group = fields.String(validate=validate.Length(max=100))
    service = fields.String(
        validate=validate.Length(max=255),
        metadata={"description": "The service that answered (OpenTelemetry's service.name)"},
    )
    release = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "The service's release (OpenTelemetry's service.version)"},
    )
    compact = fields.Boolean(
        load_default=False,
        metadata={"description": "Answer [[column names], [values]...] instead of objects"},
    )

    @pre_load
    def resolve_aliases(self, data, **_kwargs):
        _refuse_repeats(data)
        data = dict(data)
        for name, value in data.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValidationError("must not contain a NUL character", name)
        for alias, name in ALIASES.items():
            if alias in data:
                if name in data:
                    raise ValidationError(f"give either {alias} or {name}, not both", alias)
                data[name] = data.pop(alias)
        return data

    @validates("ipAddress")
    def check_ip(self, value, **_kwargs):
        if canonical_ip(value) is None:
            raise ValidationError("not an IP address")

    @validates_schema
    def check_range(self, data, **_kwargs):
        first, last = data.get("dateFrom"), data.get("dateTo")
        if first and last and first > last:
            raise ValidationError(
                f"{first.isoformat()} is after dateTo ({last.isoformat()}): "
                "the range would hold no day",
                "dateFrom",
            )

    @post_load
    def normalise(self, data, **_kwargs):
        # Stored addresses are in this form (server.rules.canonical_ip): any spelling finds them.
        if "ipAddress" in data:
            data["ipAddress"] = canonical_ip(data["ipAddress"])
        return data


def _refuse_repeats(data) -> None:
    """`?status=200&status=404` would otherwise be cut to its first value, silently."""
    multidict = getattr(data, "data", data)
    if not hasattr(multidict, "getlist"):
        return
    for name in multidict:
        count = len(multidict.getlist(name))
        if count > 1:
            raise ValidationError(
                f"given {count} times; each filter takes one value (AND them with "
                "different parameters, or make one request per value)",
                name,
            )


class DataRowSchema(Schema):
    hostname = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    path = fields.String()
    user_agent = fields.String(allow_none=True)
    method = fields.String(metadata={"example": "GET"})
    status = fields.Integer()
    response_time = fields.Integer(metadata={"description": "milliseconds"})
    location = fields.String(allow_none=True, metadata={"description": "ISO country code"})
    user_id = fields.String(allow_none=True)
    created_at = fields.String(metadata={"example": "2026-01-01T12:00:00.123456+00:00"})
    browser = fields.String(allow_none=True)
    os = fields.String(allow_none=True)
    device = fields.String(allow_none=True)
    framework = fields.String(allow_none=True)
    consumer = fields.String(allow_none=True, metadata={"description": "The consumer's id"})
    consumer_group = fields.String(allow_none=True)
    endpoint = fields.String(
        metadata={"description": "The path's template, or the route an OpenTelemetry span named"}
    )
    service = fields.String(
        allow_none=True, metadata={"description": "OpenTelemetry's service.name, if sent"}
    )
    release = fields.String(
        allow_none=True, metadata={"description": "OpenTelemetry's service.version, if sent"}
    )
