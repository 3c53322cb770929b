"""Schemas of the alerts API: rules, channels, incidents and their deliveries."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.alerts.rules import CHANNEL_KINDS, KINDS, MAX_WINDOW_MINUTES
from server.net.urlguard import MAX_URL_LENGTH


class RuleCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(max=100), metadata={"example": "Errors"})
    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={
            "description": "error_rate: errors above `threshold` % of at least `min_requests` "
            "requests in the last `window_minutes`; latency_p95: the p95 response time above "
            "`threshold` ms (of `endpoint` only, if given); no_traffic: no request for "
            "`window_minutes` while the same window had traffic on at least 4 of the 7 "
            "previous days; monitor_down: `consecutive` failed checks of `monitor_id` in a row; "
            "release_regression: after the latest deploy, an endpoint's p95 (or p50) or 5xx "
            "rate worse beyond noise by at least `threshold` % (default 10) over equal "
            "windows of `window_minutes` before and after, each side with `min_requests` "
            "(default 30); once per deploy, resolved by a later deploy or when it recovers"
        },
    )
    threshold = fields.Float(
        allow_nan=False,
        metadata={
            "description": "Percent (error_rate), ms (latency_p95) or the least rise in "
            "percent (release_regression)"
        },
    )
    window_minutes = fields.Integer(
        validate=validate.Range(min=1, max=MAX_WINDOW_MINUTES),
        metadata={"description": "The last N minutes the rule looks at"},
    )
    min_requests = fields.Integer(
        validate=validate.Range(min=1, max=1_000_000_000),
        metadata={"description": "Fewer requests in the window never fire (default 1)"},
    )
    include_4xx = fields.Boolean(
        metadata={"description": "error_rate: count 4xx as errors too (default: 5xx only)"}
    )
    endpoint = fields.String(
        validate=validate.Length(max=263),
        metadata={
            "description": "latency_p95: one endpoint as the dashboard shows it",
            "example": "GET /items/{id}",
        },
    )
    monitor_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    consecutive = fields.Integer(
        validate=validate.Range(min=1, max=100),
        metadata={"description": "monitor_down: failed checks in a row"},
    )
    channel_ids = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={"description": "Where its notifications go (ids of this key's channels)"},
    )


class RuleUpdateSchema(RuleCreateSchema):
    """The same fields, each optional: only those sent change."""

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)

    channel_ids = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)),
        validate=validate.Length(max=20),
        metadata={"description": "Replaces the rule's channels"},
    )


class RuleSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    threshold = fields.Float(allow_none=True)
    window_minutes = fields.Integer(allow_none=True)
    min_requests = fields.Integer(allow_none=True)
    include_4xx = fields.Boolean()
    endpoint = fields.String(allow_none=True)
    monitor_id = fields.Integer(allow_none=True)
    consecutive = fields.Integer(allow_none=True)
    slo_id = fields.Integer(allow_none=True, metadata={"description": "slo_*_burn: the SLO"})
    channel_ids = fields.List(fields.Integer())
    created_at = fields.DateTime()
    state = fields.String(metadata={"description": "ok, or firing while an incident is open"})
    firing_since = fields.DateTime(allow_none=True)


class ChannelCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(CHANNEL_KINDS))
    name = fields.String(validate=validate.Length(max=100), load_default="")
    url = fields.String(
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={"description": "webhook and slack: an http(s) URL with a public host"},
    )
    email = fields.Email(
        validate=validate.Length(max=254), metadata={"description": "email: the address"}
    )


class ChannelSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    target = fields.String(metadata={"description": "The URL or email address"})
    created_at = fields.DateTime()


class NewChannelSchema(ChannelSchema):
    secret = fields.String(
        allow_none=True,
        metadata={
            "description": "webhook: the HMAC-SHA256 signing secret, shown this once. Each "
            "request carries X-Signature: sha256=<hex HMAC of the body with it>"
        },
    )


class AttemptSchema(Schema):
    at = fields.DateTime()
    ok = fields.Boolean()
    error = fields.String(allow_none=True)


class DeliverySchema(Schema):
    id = fields.Integer()
    channel_id = fields.Integer()
    event = fields.String(metadata={"description": "open, resolve or test"})
    status = fields.String(metadata={"description": "pending, sent or failed"})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempt_log = fields.List(fields.Nested(AttemptSchema))


class IncidentSchema(Schema):
    id = fields.Integer()
    rule_id = fields.Integer()
    rule_name = fields.String()
    started_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    value = fields.Float(allow_none=True, metadata={"description": "What crossed the threshold"})
    resolved_value = fields.Float(allow_none=True)
    summary = fields.String()
    deliveries = fields.List(fields.Nested(DeliverySchema))
