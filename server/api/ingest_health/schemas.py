"""Schemas of the ingest health API."""

from __future__ import annotations

from marshmallow import Schema, fields


class LastBatchSchema(Schema):
    at = fields.DateTime()
    framework = fields.String(allow_none=True)
    client = fields.String(allow_none=True, metadata={"description": "Its User-Agent"})
    accepted = fields.Integer()
    refused = fields.Integer()


class SkewSchema(Schema):
    batches = fields.Integer(metadata={"description": "Recent batches that sent their clock"})
    median_s = fields.Float(
        metadata={"description": "Median of server receive time minus client send time, s"}
    )
    largest_s = fields.Float(metadata={"description": "The largest by size, with its sign, s"})


class ClientSchema(Schema):
    framework = fields.String(allow_none=True)
    client = fields.String(
        allow_none=True,
        metadata={"description": "The User-Agent, e.g. api-analytics-middleware/1.2.0"},
    )
    first_at = fields.DateTime()
    last_at = fields.DateTime()
    batches = fields.Integer()
    last_accepted = fields.Integer()
    last_refused = fields.Integer()
    skew = fields.Nested(
        SkewSchema,
        allow_none=True,
        metadata={"description": "Its clock against ours (X-Client-Time); none: not sent"},
    )


class DropsSchema(Schema):
    framework = fields.String(allow_none=True)
    client = fields.String(allow_none=True)
    instance = fields.String(metadata={"description": "The client process (X-Client-Drops)"})
    buffer_full = fields.Integer(metadata={"description": "Records dropped: its buffer was full"})
    refused = fields.Integer(metadata={"description": "Records of batches refused outright"})
    failed = fields.Integer(metadata={"description": "Sends that failed and were retried"})
    first_at = fields.DateTime(metadata={"description": "Its first report"})
    last_at = fields.DateTime(metadata={"description": "Its latest report"})
    changed_at = fields.DateTime(metadata={"description": "When a counter last rose"})


class DaySchema(Schema):
    day = fields.String(metadata={"example": "2026-12-07"})
    batches = fields.Integer()
    batches_refused = fields.Integer(metadata={"description": "Batches with every row refused"})
    accepted = fields.Integer()
    refused = fields.Integer()
    reasons = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Refused rows per field named in the refusal"},
    )


class RefusedRowSchema(Schema):
    at = fields.DateTime()
    framework = fields.String(allow_none=True)
    index = fields.Integer(metadata={"description": "The row's index in its batch"})
    reason = fields.String()
    row = fields.Raw(metadata={"description": "The row as sent, secrets masked"})


class IngestHealthSchema(Schema):
    last_batch = fields.Nested(LastBatchSchema, allow_none=True)
    clients = fields.List(fields.Nested(ClientSchema))
    days = fields.List(fields.Nested(DaySchema), metadata={"description": "14 days, oldest first"})
    refused_rows = fields.List(
        fields.Nested(RefusedRowSchema), metadata={"description": "The newest 100, newest first"}
    )
    client_drops = fields.List(
        fields.Nested(DropsSchema),
        metadata={"description": "Client processes that reported drops, latest first"},
    )
    warnings = fields.List(
        fields.String(), metadata={"description": "Clock skew beyond 5 s, records clients lost"}
    )
    checks = fields.List(
        fields.String(), metadata={"description": "What to check, while nothing has arrived"}
    )
