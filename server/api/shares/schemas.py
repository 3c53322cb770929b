"""Schemas of the share links API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields

from server.keys.shares import FILTER_DIMS


class ShareCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    label = fields.String(
        allow_none=True, metadata={"description": "Up to 100 characters", "example": "For the team"}
    )
    hostname = fields.String(
        allow_none=True,
        metadata={
            "description": "Show only this hostname's requests",
            "example": "api.example.com",
        },
    )
    filters = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        allow_none=True,
        metadata={
            "description": "Fixed filters the viewer cannot remove: "
            + ", ".join(FILTER_DIMS)
            + " (the dashboard's click filters)",
            "example": {"status_class": "5xx", "location": "US"},
        },
    )
    expires_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "When the link stops working (with a time zone); none: never"},
    )


class ShareSchema(Schema):
    id = fields.Integer()
    label = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    filters = fields.Dict(keys=fields.String(), values=fields.String())
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)
    state = fields.String(metadata={"description": "active, expired or revoked"})


class NewShareSchema(ShareSchema):
    token = fields.String(metadata={"description": "Shown once; only its hash is stored."})
    path = fields.String(
        metadata={"description": "The link's path on this server: /dashboard/s/<token>"}
    )
