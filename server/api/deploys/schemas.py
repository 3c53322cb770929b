"""Schemas of the deploys API: a deploy, and the release comparison around one."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.deploys.comparison import DEFAULT_MINUTES, MAX_MINUTES


class DeployCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    version = fields.String(
        required=True, validate=validate.Length(min=1, max=100), metadata={"example": "1.4.2"}
    )
    time = fields.AwareDateTime(
        default_timezone=None,
        metadata={"description": "When it went live, ISO 8601 with an offset (default: now)"},
    )
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    hostname = fields.String(
        allow_none=True,
        validate=validate.Length(max=255),
        metadata={"description": "The host it went to (none: every host of the key)"},
    )
    only_if_changed = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Record it only if the last deploy recorded for the key and "
            "hostname has another version (else 200 with that one): what our client sends"
        },
    )


class DeployListArgs(Schema):
    since = fields.AwareDateTime(metadata={"description": "From this time (inclusive)"})
    until = fields.AwareDateTime(metadata={"description": "Before this time"})
    hostname = fields.String(validate=validate.Length(max=255))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class DeploySchema(Schema):
    id = fields.Integer()
    version = fields.String()
    time = fields.DateTime()
    description = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    created_at = fields.DateTime()


class ComparisonArgs(Schema):
    window_minutes = fields.Integer(
        load_default=DEFAULT_MINUTES,
        validate=validate.Range(min=1, max=MAX_MINUTES),
        metadata={"description": "Each side's length; shortened to the time since the deploy"},
    )


class SideSchema(Schema):
    requests = fields.Integer()
    errors = fields.Integer(metadata={"description": "5xx answers"})
    error_rate = fields.Float(metadata={"description": "Percent 5xx"})
    p50 = fields.Float(allow_none=True)
    p50_ci = fields.List(fields.Float(allow_none=True), metadata={"description": "99 % interval"})
    p95 = fields.Float(allow_none=True)
    p95_ci = fields.List(fields.Float(allow_none=True), metadata={"description": "99 % interval"})


class EndpointChangeSchema(Schema):
    endpoint = fields.String(metadata={"example": "POST /orders"})
    before = fields.Nested(SideSchema, allow_none=True)
    after = fields.Nested(SideSchema, allow_none=True)
    verdict = fields.String(metadata={"description": "worse, within noise, new, better or gone"})
    changes = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "The measures beyond noise (p50, p95, error_rate): up or down"},
    )
    worse_by = fields.Float(metadata={"description": "Largest relative rise beyond noise"})


class ComparisonSchema(Schema):
    deploy = fields.Nested(DeploySchema)
    window_minutes = fields.Float()
    before = fields.List(fields.Integer(), metadata={"description": "[since, until) epoch µs"})
    after = fields.List(fields.Integer(), metadata={"description": "[since, until) epoch µs"})
    endpoints = fields.List(fields.Nested(EndpointChangeSchema))
