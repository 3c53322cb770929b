"""Create API keys; the plaintext is returned once and only its hash is stored."""

from __future__ import annotations

import logging

from flask import jsonify
from flask.views import MethodView

from server.api.base import Blueprint
from server.api.keys.schemas import NewKeySchema
from server.auth import create_key
from server.db import get_engine

log = logging.getLogger(__name__)
blp = Blueprint("keys", __name__, description="API keys")


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
