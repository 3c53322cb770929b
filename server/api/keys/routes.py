"""API keys: create one, describe and name the caller's, rotate it.

A key's plaintext is returned once and only its hash is stored.
"""

from __future__ import annotations

import logging

from flask import jsonify
from flask.views import MethodView
from sqlalchemy import update

from server.api.base import Blueprint
from server.api.keys.schemas import KeySchema, KeyUpdateSchema, NewKeySchema, RotatedKeySchema
from server.api.schemas import ErrorSchema
from server.auth import require_key, rotation_grace
from server.db import get_engine
from server.keys.api_keys import create_key, describe_key, rotate_key
from server.models import api_keys

log = logging.getLogger(__name__)
blp = Blueprint("keys", __name__, description="API keys")

UNAUTHORISED = (
    "Missing, unknown or revoked key, or a rotated key in its grace period "
    "(accepted for ingest only)."
)


def _new_key() -> str:
    with get_engine().begin() as conn:
        key_id, key = create_key(conn)
    log.info("created API key id=%s", key_id)
    return key


@blp.route("/keys")
class Keys(MethodView):
    @blp.response(201, NewKeySchema)
    def post(self):
        """Create an API key

        The key is in the answer and nowhere else: store it now. Send it in the
        X-AUTH-TOKEN header on the data API and in the ingest body.
        """
        return {"api_key": _new_key()}


@blp.route("/keys/current")
class CurrentKey(MethodView):
    @blp.response(200, KeySchema)
    @blp.keyed(UNAUTHORISED)
    def get(self):
        """The key sent in X-AUTH-TOKEN: its name, age, last use and rotation state"""
        key_id = require_key()
        with get_engine().connect() as conn:
            return describe_key(conn, key_id)

    @blp.arguments(KeyUpdateSchema)
    @blp.response(200, KeySchema)
    @blp.alt_response(400, schema=ErrorSchema, description="An empty or too long name.")
    @blp.keyed(UNAUTHORISED)
    def patch(self, args):
        """Name the API this key belongs to (shown in the dashboard's header)"""
        key_id = require_key()
        with get_engine().begin() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(name=args["name"].strip())
            )
            return describe_key(conn, key_id)


@blp.route("/keys/rotate")
class RotateKey(MethodView):
    @blp.response(201, RotatedKeySchema)
    @blp.keyed(UNAUTHORISED)
    def post(self):
        """Replace the key with a new one, shown once

        The key sent keeps working for ingest only, for KEY_ROTATION_GRACE_HOURS
        (24 by default), so middlewares can be redeployed with the new key; the data
        and keys APIs and the dashboard take only the new key at once. Only one
        previous key is kept: rotating again within the grace period ends the older
        previous key at once.
        """
        key_id = require_key()
        with get_engine().begin() as conn:
            key, until = rotate_key(conn, key_id, rotation_grace())
        log.info("rotated API key id=%s", key_id)
        return {"api_key": key, "previous_key_valid_until": until}


@blp.route("/generate")
class Generate(MethodView):
    @blp.doc(
        responses={
            "200": {
                "description": "The new key",
                "content": {"application/json": {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self):
        """Create an API key (the hosted service's sign-up call)

        Answers the new key as a bare JSON string, as old clients expect.
        """
        return jsonify(_new_key())
