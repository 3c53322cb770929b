"""Masks: a key's own patterns for the server's masking of captured headers, body fields
and query parameters, on top of the defaults (docs/capture.md)."""

from __future__ import annotations

import logging

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields, validate

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine
from server.keys.masks import KINDS, MaskLimitReached, add_mask, delete_mask
from server.keys.masks import list_masks as masks_of

log = logging.getLogger(__name__)
blp = Blueprint("masks", __name__, description="Masking patterns")


class MaskCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={"description": "header, field (a JSON or form field at any depth) or query"},
    )
    pattern = fields.String(
        required=True,
        metadata={
            "description": "A regular expression searched in the lower-cased name",
            "example": "session|signature",
        },
    )


class MaskSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    pattern = fields.String()
    created_at = fields.AwareDateTime()


@blp.route("/masks")
class Masks(MethodView):
    @blp.response(200, MaskSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's own masking patterns (the defaults always apply too)"""
        key_id = require_key()
        with get_engine().connect() as conn:
            return masks_of(conn, key_id)

    @blp.arguments(MaskCreateSchema)
    @blp.response(201, MaskSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="Not a regular expression, or empty.")
    @blp.alt_response(409, schema=ErrorSchema, description="The key has 100 patterns already.")
    @blp.keyed()
    def post(self, body):
        """Add a masking pattern: the matching headers, body fields or query parameters of
        every capture the key receives from now on are stored as [masked]"""
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                mask = add_mask(conn, key_id, body["kind"], body["pattern"])
        except ValueError as exc:
            abort(400, message=str(exc))
        except MaskLimitReached as exc:  # server.keys.caps.CapReached: names the cap
            abort(409, message=str(exc))
        log.info("key id=%s added a %s masking pattern", key_id, body["kind"])
        return mask


@blp.route("/masks/<int(max=2147483647):mask_id>")
class MaskById(MethodView):
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema, description="No such pattern for this key.")
    @blp.keyed()
    def delete(self, mask_id):
        """Delete a masking pattern"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not delete_mask(conn, key_id, mask_id):
                abort(404, message="No such pattern for this key.")
