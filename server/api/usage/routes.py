"""Usage: a key's requests per month by consumer, route or status class, for billing."""

from __future__ import annotations

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.api.usage.schemas import (
    NewWebhookSchema,
    UsageArgs,
    UsageSchema,
    WebhookSchema,
    WebhookSetSchema,
)
from server.auth import require_key
from server.db import get_engine
from server.usage import closing, export, store

blp = Blueprint("usage", __name__, description="Usage metering")


def answer(found: dict, form: str) -> Response:
    """The usage as JSON or CSV (server.usage.export: the dashboard's download is the same
    bytes)."""
    headers = {"X-Usage-Final": str(found["final"]).lower()}
    if form == "csv":
        body, mimetype = export.as_csv(found), "text/csv"
    else:
        body, mimetype = export.as_json(found), "application/json"
    if form == "csv":
        name = export.file_name(found, form)
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(body, mimetype=mimetype, headers=headers)


@blp.route("/usage")
class UsageView(MethodView):
    @blp.arguments(UsageArgs, location="query")
    @blp.response(200, UsageSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A month not begun, or bad fields.")
    @blp.keyed()
    def get(self, args):
        """The key's requests in a month, per consumer, route or status class

        Exact. A month an hour past its end is final: frozen when first asked for, the
        same answer on every later ask; rows of it that arrive afterwards are listed
        under `late`, never added. The current month is live (`final` false). With
        `format=csv`: one line per name, `late` true for the late rows.
        """
        key_id = require_key()
        try:
            found = store.usage(key_id, args["month"], args["group_by"]).as_dict()
        except store.MonthError as exc:
            abort(400, message=str(exc))
        return answer(found, args["format"])


NO_WEBHOOK = "This key has no usage webhook."


@blp.route("/usage/webhook")
class UsageWebhook(MethodView):
    @blp.response(200, WebhookSchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_WEBHOOK)
    def get(self):
        """The webhook told when a month closes, and the months it was told of"""
        key_id = require_key()
        with get_engine().connect() as conn:
            found = closing.get_webhook(conn, key_id)
        if found is None:
            abort(404, message=NO_WEBHOOK)
        return found

    @blp.arguments(WebhookSetSchema)
    @blp.response(200, NewWebhookSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A URL the server may not call.")
    @blp.keyed()
    def put(self, body):
        """Set the webhook told when a month closes

        An hour after a month ends, its usage is frozen and POSTed here once: JSON with
        `event` usage.month_closed, `month`, and `usage` holding GET /api/usage's answer
        for each grouping; signed with X-Signature as alert webhooks are, with the secret
        answered here once (setting it again makes a new one). A failed POST is tried
        again after 1, 5 and 15 minutes. Months closed before it was set are not sent.
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                found, secret = closing.set_webhook(
                    conn, key_id, body["url"], current_app.config["SETTINGS"]
                )
        except closing.WebhookInputError as exc:
            abort(400, message=str(exc))
        return {**found, "secret": secret}

    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_WEBHOOK)
    def delete(self):
        """Remove the webhook: no month is sent any more"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not closing.delete_webhook(conn, key_id):
                abort(404, message=NO_WEBHOOK)
