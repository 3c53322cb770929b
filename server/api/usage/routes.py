"""Usage: a key's requests per month by consumer, route or status class, for billing."""

from __future__ import annotations

import csv
import io

from flask import Response
from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.api.usage.schemas import UsageArgs, UsageSchema
from server.auth import require_key
from server.usage import store

blp = Blueprint("usage", __name__, description="Usage metering")


def as_csv(found: dict) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([found["group_by"], "requests", "errors", "late"])
    for late, rows in ((False, found["rows"]), (True, found["late"]["rows"])):
        for r in rows:
            writer.writerow([r["name"] or "", r["requests"], r["errors"], str(late).lower()])
    name = f"usage-{found['month']}-{found['group_by']}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Usage-Final": str(found["final"]).lower(),
        },  # fmt: skip
    )


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
        if args["format"] == "csv":
            return as_csv(found)
        return found
