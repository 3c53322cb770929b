"""The data API: a key's logged requests, filtered and paged, and their deletion."""

from __future__ import annotations

import logging

from flask import Response, current_app
from flask.views import MethodView

from server.api.base import Blueprint
from server.api.data.schemas import DataQuerySchema, DataRowSchema
from server.api.schemas import ErrorSchema
from server import stats
from server.auth import require_key
from server.keys.api_keys import delete_key

log = logging.getLogger(__name__)
blp = Blueprint("data", __name__, description="Logged requests")


@blp.route("/data")
class Data(MethodView):
    @blp.arguments(DataQuerySchema, location="query")
    @blp.response(200, DataRowSchema(many=True))
    @blp.alt_response(400, schema=ErrorSchema, description="An unknown or malformed parameter.")
    @blp.keyed()
    def get(self, args):
        """The logged requests, oldest first, 50,000 a page

        Filters combine with AND. Dates are UTC days and inclusive.
        """
        key_id = require_key()
        filters = stats.RequestFilter.from_args(key_id, args)
        page_size = current_app.config["SETTINGS"].DATA_PAGE_SIZE
        body, count = stats.data_page_json(filters, args["page"], page_size, args["compact"])
        headers = {"X-Next-Page": str(args["page"] + 1)} if count == page_size else None
        return Response(body, mimetype="application/json", headers=headers)

    @blp.response(204)
    @blp.keyed()
    def delete(self):
        """Delete everything stored for the key, and revoke it

        One transaction: requests (hot and in the columnar store's catalog), pending
        batches, monitors and pings; then the key's files, before the answer.
        Later calls with this key answer 401.
        """
        key_id = require_key()
        delete_key(key_id)
