"""Share links: read-only links to the key's dashboard, made, listed and revoked."""

from __future__ import annotations

import logging

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import select

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.api.shares.schemas import NewShareSchema, ShareCreateSchema, ShareSchema
from server.auth import require_key
from server.db import get_engine
from server.keys.caps import CapReached
from server.keys.shares import ShareError, create_share, describe, list_shares, revoke_share
from server.models import share_links

log = logging.getLogger(__name__)
blp = Blueprint("shares", __name__, description="Share links")

UNAUTHORISED = "Missing, unknown or revoked key (a rotated key is accepted for ingest only)."


@blp.route("/shares")
class Shares(MethodView):
    @blp.response(200, ShareSchema(many=True))
    @blp.keyed(UNAUTHORISED)
    def get(self):
        """The key's share links, newest first, revoked and expired ones included"""
        key_id = require_key()
        with get_engine().connect() as conn:
            return list_shares(conn, key_id)

    @blp.arguments(ShareCreateSchema)
    @blp.response(201, NewShareSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A malformed field, named.")
    @blp.keyed(UNAUTHORISED)
    @blp.alt_response(409, schema=ErrorSchema, description="The key has SHARE_LIMIT (100) "
                      "working links already.")  # fmt: skip
    def post(self, args):
        """Make a read-only link to the key's dashboard; its token is shown once

        The link, /dashboard/s/<token>, shows the overview and the explorer of this
        key's data with the fixed hostname and filters applied, never the key or its
        settings. Revoking it ends it at once.
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                limit = current_app.config["SETTINGS"].SHARE_LIMIT
                share_id, token = create_share(conn, key_id, **args, limit=limit)
                row = conn.execute(select(share_links).where(share_links.c.id == share_id)).one()
        except ShareError as exc:
            abort(400, message=str(exc))
        except CapReached as exc:
            abort(409, message=str(exc))
        log.info("created share link id=%s for key id=%s", share_id, key_id)
        return {**describe(row), "token": token, "path": f"/dashboard/s/{token}"}


@blp.route("/shares/<int:share_id>")
class Share(MethodView):
    @blp.response(204)
    @blp.keyed(UNAUTHORISED)
    @blp.alt_response(404, schema=ErrorSchema, description="No such link for this key.")
    def delete(self, share_id):
        """Revoke a link: it stops working at once (revoking it again does nothing)"""
        key_id = require_key()
        with get_engine().begin() as conn:
            found = revoke_share(conn, key_id, share_id)
        if not found:
            abort(404, message=f"No share link {share_id} for this key.")
        log.info("revoked share link id=%s of key id=%s", share_id, key_id)
