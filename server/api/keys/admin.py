"""The operators' API, behind ADMIN_TOKEN (Authorization: Bearer): make, list and delete
keys whatever SIGNUP says, and make, list and revoke invitations (SIGNUP=invite).

Off (404) while no ADMIN_TOKEN is set. Keys an operator makes are not rate limited.
"""

from __future__ import annotations

import logging

from flask.views import MethodView
from flask_smorest import abort

from server.api.keys.routes import blp
from server.api.keys.schemas import (
    AdminKeyRequestSchema,
    AdminKeySchema,
    AdminNewKeySchema,
    InviteRequestSchema,
    InviteSchema,
    NewInviteSchema,
)
from server.api.schemas import ErrorSchema
from server.auth import require_admin
from server.db import get_engine
from server.keys.api_keys import create_key, delete_key, key_exists, list_keys
from server.keys.invites import INVITE_PATH, create_invite, list_invites, revoke_invite

log = logging.getLogger(__name__)

OPERATORS = "Operators only: ADMIN_TOKEN as a Bearer token (404 while it is not set)."


def admin_only(view):
    """Document the operator's token and the answers without it."""
    view = blp.alt_response(401, schema=ErrorSchema, description=OPERATORS)(view)
    return blp.alt_response(404, schema=ErrorSchema, description=OPERATORS)(view)


@blp.route("/admin/keys")
class AdminKeys(MethodView):
    @blp.response(200, AdminKeySchema(many=True))
    @admin_only
    def get(self):
        """Every key (operators): id, name, age, last use, open sessions"""
        require_admin()
        with get_engine().connect() as conn:
            return list_keys(conn)

    @blp.arguments(AdminKeyRequestSchema, required=False)
    @blp.response(201, AdminNewKeySchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A bad name or an unknown field.")
    @admin_only
    def post(self, body):
        """Make a key whatever SIGNUP says (operators); the key is shown once"""
        require_admin()
        name = (body or {}).get("name")
        with get_engine().begin() as conn:
            key_id, key = create_key(conn, name=name)
        log.info("an operator created API key id=%s", key_id)
        return {"api_key": key, "id": key_id, "name": name.strip() if name else None}


@blp.route("/admin/keys/<int(max=2147483647):key_id>")
class AdminKeyById(MethodView):
    @blp.response(204)
    @admin_only
    def delete(self, key_id):
        """Delete a key and everything stored for it (operators)"""
        require_admin()
        with get_engine().connect() as conn:
            found = key_exists(conn, key_id)
        if not found:
            abort(404, message=f"No key {key_id}.")
        delete_key(key_id)
        log.info("an operator deleted API key id=%s", key_id)


@blp.route("/admin/invites")
class AdminInvites(MethodView):
    @blp.response(200, InviteSchema(many=True))
    @admin_only
    def get(self):
        """Every invitation, newest first, with its state (operators)"""
        require_admin()
        with get_engine().connect() as conn:
            return list_invites(conn)

    @blp.arguments(InviteRequestSchema, required=False)
    @blp.response(201, NewInviteSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A bad label or number of days.")
    @admin_only
    def post(self, body):
        """Make a single-use invitation to create a key (operators; SIGNUP=invite)

        The token is in this answer only; send the link (the server's address, then
        `path`) to the person invited.
        """
        require_admin()
        body = body or {}
        with get_engine().begin() as conn:
            invite_id, token = create_invite(conn, body.get("label"), body.get("days", 7))
            found = next(i for i in list_invites(conn) if i["id"] == invite_id)
        log.info("an operator created invitation id=%s", invite_id)
        return {**found, "token": token, "path": f"{INVITE_PATH}#{token}"}


@blp.route("/admin/invites/<int(max=2147483647):invite_id>")
class AdminInviteById(MethodView):
    @blp.response(204)
    @admin_only
    def delete(self, invite_id):
        """Revoke a pending invitation (operators)"""
        require_admin()
        with get_engine().begin() as conn:
            if not revoke_invite(conn, invite_id):
                abort(404, message=f"No pending invitation {invite_id}.")
        log.info("an operator revoked invitation id=%s", invite_id)
