"""Schemas shared by several resources (errors, the ingest payload for the docs)."""

from __future__ import annotations

from flask_smorest.error_handler import ErrorSchema
from marshmallow import Schema, fields, validate

__all__ = ["ErrorSchema", "IngestPayloadSchema", "LoggedRequestSchema"]


class LoggedRequestSchema(Schema):
    hostname = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    path = fields.String(required=True)
    user_agent = fields.String(allow_none=True)
    method = fields.String(required=True, metadata={"example": "GET"})
    status = fields.Integer(required=True, validate=validate.Range(100, 599))
    response_time = fields.Float(required=True, metadata={"description": "milliseconds"})
    user_id = fields.String(allow_none=True)
    created_at = fields.String(
        required=True, metadata={"description": "ISO 8601; no offset means UTC"}
    )


class IngestPayloadSchema(Schema):
    api_key = fields.String(required=True)
    framework = fields.String(metadata={"example": "FastAPI"})
    privacy_level = fields.Integer(validate=validate.OneOf([0, 1, 2]))
    requests = fields.List(fields.Nested(LoggedRequestSchema), required=True)
