"""Schemas of the SLO API: an SLO as sent, and as answered with where it stands."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.slos.status import BURN_WINDOWS
from server.slos.store import OBJECTIVES, WINDOWS


class SloCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True, validate=validate.Length(min=1, max=100), metadata={"example": "Checkout"}
    )
    objective = fields.String(
        required=True,
        validate=validate.OneOf(OBJECTIVES),
        metadata={
            "description": "availability: the share of requests not answered 5xx (nor 4xx, "
            "with include_4xx); latency: the share answered within threshold_ms"
        },
    )
    include_4xx = fields.Boolean(metadata={"description": "availability: 4xx count as bad too"})
    threshold_ms = fields.Integer(
        validate=validate.Range(min=1, max=3_600_000),
        metadata={"description": "latency: a request slower than this is bad"},
    )
    target = fields.Float(
        required=True,
        allow_nan=False,
        metadata={"description": "Percent of good requests, 50 to 99.999", "example": 99.9},
    )
    window_days = fields.Integer(
        validate=validate.OneOf(WINDOWS), metadata={"description": "Rolling window (default 30)"}
    )
    hostname = fields.String(allow_none=True, validate=validate.Length(max=255))
    endpoints = fields.List(
        fields.String(validate=validate.Length(min=1, max=263)),
        validate=validate.Length(max=50),
        metadata={
            "description": "Only these endpoints: templates or `*` patterns, with or without "
            "the method (none: every endpoint)",
            "example": ["POST /orders", "GET /v1/items/*"],
        },
    )
    consumer_group = fields.String(allow_none=True, validate=validate.Length(max=100))
    alerts = fields.Boolean(
        metadata={"description": "Create its fast- and slow-burn alert rules (default true)"}
    )
    channel_ids = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)),
        validate=validate.Length(max=20),
        metadata={"description": "Where the burn-rate alerts go (ids of this key's channels)"},
    )


class SloUpdateSchema(SloCreateSchema):
    """The SLO's own fields, each optional: only those sent change (its alert rules are
    changed through /api/alerts)."""

    class Meta:
        unknown = RAISE
        exclude = ("alerts", "channel_ids")

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)


BurnRatesSchema = Schema.from_dict(
    {name: fields.Float(allow_none=True) for name in BURN_WINDOWS}, name="BurnRates"
)


class SloStatusSchema(Schema):
    requests = fields.Integer(metadata={"description": "In the rolling window"})
    good = fields.Integer()
    bad = fields.Integer()
    sli = fields.Float(allow_none=True, metadata={"description": "Percent good; none: no request"})
    budget = fields.Float(metadata={"description": "Bad requests the target allows"})
    budget_remaining = fields.Float(
        metadata={"description": "Percent of the budget left (negative once overspent)"}
    )
    burn_rates = fields.Nested(
        BurnRatesSchema,
        metadata={"description": "Bad share over the last 5m..3d / (1 - target); none: no request"},
    )
    since_us = fields.Integer()
    until_us = fields.Integer()


class SloSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    objective = fields.String()
    include_4xx = fields.Boolean()
    threshold_ms = fields.Integer(allow_none=True)
    target = fields.Float()
    window_days = fields.Integer()
    hostname = fields.String(allow_none=True)
    endpoints = fields.List(fields.String())
    consumer_group = fields.String(allow_none=True)
    alert_rule_ids = fields.List(fields.Integer())
    created_at = fields.DateTime()
    status = fields.Nested(SloStatusSchema)


class SloDetailSchema(SloSchema):
    burn_down = fields.List(
        fields.List(fields.Float()),
        metadata={"description": "[epoch second, percent of the budget left], hour by hour"},
    )
