"""Usage: a key's requests per month by consumer, route or status class, for billing."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.api.usage.schemas import UsageArgs, UsageSchema
from server.auth import require_key
from server.usage import export, store

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
