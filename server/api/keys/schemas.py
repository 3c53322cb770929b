"""Schemas for API keys."""

from marshmallow import Schema, fields


class NewKeySchema(Schema):
    api_key = fields.String(
        required=True, metadata={"description": "Shown once; only its hash is stored."}
    )
