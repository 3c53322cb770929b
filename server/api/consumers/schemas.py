"""Schemas of the consumers API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.api.errors.schemas import PERIOD


class ConsumersQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    period = PERIOD
    by = fields.String(
        load_default="consumer",
        validate=validate.OneOf(["consumer", "consumer_group"]),
        metadata={"description": "One row per consumer (default) or per consumer group"},
    )
    limit = fields.Integer(
        load_default=1000,
        validate=validate.Range(1, 100_000),
        metadata={"description": "The busiest this many (X-Total-Count says how many there are)"},
    )


class ConsumerSchema(Schema):
    id = fields.String(metadata={"description": "The consumer's id, or the group's name"})
    name = fields.String(allow_none=True)
    group = fields.String(allow_none=True)
    requests = fields.Integer()
    errors = fields.Integer(metadata={"description": "4xx and 5xx answers"})
    error_rate = fields.Float(metadata={"description": "Percent of requests"})
    p95 = fields.Float(allow_none=True, metadata={"description": "Milliseconds, exact"})
    last_seen = fields.AwareDateTime()
    top_endpoints = fields.List(fields.String())
