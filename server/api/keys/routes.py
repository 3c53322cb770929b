"""API keys: create one (as SIGNUP allows, rate limited per client address), describe and
name the caller's, rotate it, and list or end its dashboard sessions.

A key's plaintext is returned once and only its hash is stored. The operators' API
(ADMIN_TOKEN) joins this blueprint from server.api.keys.admin.
"""

from __future__ import annotations

import logging

from flask import current_app, jsonify
from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.keys.schemas import (
    EndedSchema,
    KeySchema,
    KeyUpdateSchema,
    NewKeyRequestSchema,
    NewKeySchema,
    RotatedKeySchema,
    SessionSchema,
)
from server.api.schemas import ErrorSchema
from server.auth import require_key, rotation_grace
from server.db import get_engine
from server.keys.api_keys import create_key, describe_key, rename_key, rotate_key
from server.keys.invites import SignupRefused, check_signup, redeem_invite
from server.keys.sessions import Lifetimes, end_session, end_sessions, list_sessions
from server.ratelimit import key_creation_wait

log = logging.getLogger(__name__)
blp = Blueprint("keys", __name__, description="API keys")

UNAUTHORISED = (
    "Missing, unknown or revoked key, or a rotated key in its grace period "
    "(accepted for ingest only)."
)
REFUSED = (
    "Sign-up is closed (SIGNUP=closed: only the operator makes keys), by invitation "
    "(SIGNUP=invite) and none was sent, or the invitation cannot be used."
)
LIMITED = "Too many keys made from this address (KEY_CREATE_PER_HOUR); see Retry-After."


def _new_key(invite: str | None = None, name: str | None = None) -> str:
    """A key for whoever asks, if SIGNUP lets them and their address is under its rate."""
    settings = current_app.config["SETTINGS"]
    try:
        check_signup(settings.SIGNUP, invite)
    except SignupRefused as exc:
        abort(403, message=str(exc))
    retry_after = key_creation_wait()
    if retry_after is not None:
        abort(
            429,
            message=f"Too many keys made from this address: at most {settings.KEY_CREATE_PER_HOUR}"
            f" an hour (KEY_CREATE_PER_HOUR). Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        with get_engine().begin() as conn:
            if invite:
                key_id, key = redeem_invite(conn, invite, name)
            else:
                key_id, key = create_key(conn, name=name)
    except ValueError as exc:
        abort(403 if invite else 400, message=str(exc))
    log.info("created API key id=%s%s", key_id, " with an invitation" if invite else "")
    return key


@blp.route("/keys")
class Keys(MethodView):
    @blp.arguments(NewKeyRequestSchema, required=False)
    @blp.response(201, NewKeySchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A bad name or an unknown field.")
    @blp.alt_response(403, schema=ErrorSchema, description=REFUSED)
    @blp.alt_response(429, schema=ErrorSchema, description=LIMITED)
    def post(self, body):
        """Create an API key

        The key is in the answer and nowhere else: store it now. Send it in the
        X-AUTH-TOKEN header on the data API and in the ingest body. Who may ask is the
        operator's choice (SIGNUP: open, closed, or invite, which takes `invite`); at
        most KEY_CREATE_PER_HOUR keys an hour from one address.
        """
        body = body or {}
        return {"api_key": _new_key(body.get("invite"), body.get("name"))}


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
            rename_key(conn, key_id, args["name"])
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
        previous key at once. Every dashboard session of the key ends: they sign in
        again with the new key.
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
    @blp.alt_response(403, schema=ErrorSchema, description=REFUSED)
    @blp.alt_response(429, schema=ErrorSchema, description=LIMITED)
    def get(self):
        """Create an API key (the hosted service's sign-up call)

        Answers the new key as a bare JSON string, as old clients expect. Only while
        SIGNUP=open; rate limited like POST /api/keys.
        """
        return jsonify(_new_key())


@blp.route("/keys/current/sessions")
class Sessions(MethodView):
    @blp.response(200, SessionSchema(many=True))
    @blp.keyed(UNAUTHORISED)
    def get(self):
        """The key's open dashboard sessions, the last seen first"""
        key_id = require_key()
        lifetimes = Lifetimes.of(current_app.config["SETTINGS"])
        with get_engine().connect() as conn:
            return list_sessions(conn, key_id, lifetimes)

    @blp.response(200, EndedSchema)
    @blp.keyed(UNAUTHORISED)
    def delete(self):
        """End every dashboard session of the key, at once"""
        key_id = require_key()
        with get_engine().begin() as conn:
            ended = end_sessions(conn, key_id)
        log.info("ended %s dashboard sessions of key id=%s", ended, key_id)
        return {"ended": ended}


@blp.route("/keys/current/sessions/<int(max=2147483647):session_id>")
class SessionById(MethodView):
    @blp.response(204)
    @blp.keyed(UNAUTHORISED)
    @blp.alt_response(404, schema=ErrorSchema, description="No such session for this key.")
    def delete(self, session_id):
        """End one dashboard session of the key, at once"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not end_session(conn, key_id, session_id):
                abort(404, message=f"No open session {session_id} for this key.")
        log.info("ended dashboard session id=%s of key id=%s", session_id, key_id)


# The operators' routes join this blueprint (server.api.__init__ registers it alone).
from server.api.keys import admin  # noqa: E402, F401
