"""Query parameters and row shape of the data API (the hosted service's names)."""

from __future__ import annotations

import ipaddress

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates

ALIASES = {"ip": "ipAddress", "userID": "user_id", "userId": "user_id"}


class DataQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "50,000 rows a page"},
    )
    date = fields.Date(metadata={"description": "One UTC day, YYYY-MM-DD"})
    dateFrom = fields.Date(metadata={"description": "First UTC day, inclusive"})
    dateTo = fields.Date(metadata={"description": "Last UTC day, inclusive"})
    hostname = fields.String(validate=validate.Length(max=255))
    ipAddress = fields.String(metadata={"description": "Alias: ip"})
    status = fields.Integer(validate=validate.Range(100, 599))
    location = fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{2}$", error="must be a two-letter country code")
    )
    user_id = fields.String(
        validate=validate.Length(max=255), metadata={"description": "Aliases: userID, userId"}
    )
    compact = fields.Boolean(
        load_default=False,
        metadata={"description": "Answer [[column names], [values]...] instead of objects"},
    )

    @pre_load
    def resolve_aliases(self, data, **_kwargs):
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
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValidationError("not an IP address") from None


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
