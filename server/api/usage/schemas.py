"""Schemas of the usage API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.net.urlguard import MAX_URL_LENGTH
from server.stats.usage import GROUPS


class UsageArgs(Schema):
    month = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="Not a month (YYYY-MM)."),
        metadata={"example": "2026-11"},
    )
    group_by = fields.String(load_default="consumer", validate=validate.OneOf(list(GROUPS)))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class UsageRowSchema(Schema):
    name = fields.String(
        allow_none=True,
        metadata={"description": "The consumer id, route or status class (none: no consumer)"},
    )
    requests = fields.Integer()
    errors = fields.Integer(metadata={"description": "5xx answers"})


class LateSchema(Schema):
    requests = fields.Integer()
    errors = fields.Integer()
    rows = fields.List(fields.Nested(UsageRowSchema))


class UsageSchema(Schema):
    month = fields.String()
    group_by = fields.String()
    final = fields.Boolean(
        metadata={
            "description": "Frozen: the month closed (an hour ago at least); the same "
            "answer every time"
        }  # fmt: skip
    )
    frozen_at = fields.DateTime(allow_none=True)
    requests = fields.Integer()
    errors = fields.Integer()
    rows = fields.List(fields.Nested(UsageRowSchema))
    late = fields.Nested(
        LateSchema,
        metadata={
            "description": "Rows of a frozen month that arrived after it was frozen: "
            "never added to `rows`"
        },  # fmt: skip
    )


class WebhookSetSchema(Schema):
    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "description": "An http(s) URL with a public host",
            "example": "https://billing.example.com/hooks/usage",
        },
    )


class NoticeSchema(Schema):
    month = fields.String()
    status = fields.String(metadata={"description": "pending, sent or failed"})
    attempts = fields.Integer()
    sent_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)


class WebhookSchema(Schema):
    url = fields.String()
    created_at = fields.DateTime()
    notices = fields.List(
        fields.Nested(NoticeSchema), metadata={"description": "Closed months told, newest first"}
    )


class NewWebhookSchema(WebhookSchema):
    secret = fields.String(
        metadata={
            "description": "The HMAC-SHA256 signing secret, shown this once. Each POST carries "
            "X-Signature: sha256=<hex HMAC of the body with it>, as alert webhooks do"
        }
    )
