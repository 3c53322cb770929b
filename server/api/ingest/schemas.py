"""Schemas for the ingest answer."""

from marshmallow import Schema, fields


class RejectedRowSchema(Schema):
    index = fields.Integer(metadata={"description": "Position of the row in 'requests'."})
    error = fields.String(metadata={"description": "Which field is wrong, and why."})


class IngestResultSchema(Schema):
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedRowSchema))
