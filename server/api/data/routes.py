"""The data API: a key's logged requests, filtered and paged, and their deletion."""

from __future__ import annotations

import logging

from flask import Response, current_app
from flask.views import MethodView

from server.api.base import Blueprint
from server.api.data.schemas import DataQuerySchema, DataRowSchema
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine
from server.requests_query import RequestFilter, delete_key_data, fetch_page_json

log = logging.getLogger(__name__)
blp = Blueprint("data", __name__, description="Logged requests")


@blp.route("/data")
class Data(MethodView):
    @blp.arguments(DataQuerySchema, location="query")
    @blp.response(200, DataRowSchema(many=True))
    @blp.alt_response(400, schema=ErrorSchema, description="An unknown or malformed parameter.")
    @blp.alt_response(401, schema=ErrorSchema, description="Missing, unknown or revoked key.")
    @blp.doc(security=[{"ApiKey": []}])
    def get(self, args):
        """The logged requests, oldest first, 50,000 a page

        Filters combine with AND. Dates are UTC days and inclusive.
        """
        key_id = require_key()
        filters = RequestFilter.from_args(key_id, args)
        page_size = current_app.config["SETTINGS"].DATA_PAGE_SIZE
        with get_engine().connect() as conn:
            body, count = fetch_page_json(conn, filters, args["page"], page_size, args["compact"])
        headers = {"X-Next-Page": str(args["page"] + 1)} if count == page_size else None
        return Response(body, mimetype="application/json", headers=headers)

    @blp.response(204)
    @blp.alt_response(401, schema=ErrorSchema, description="Missing, unknown or revoked key.")
    @blp.doc(security=[{"ApiKey": []}])
    def delete(self):
        """Delete everything stored for the key, and revoke it

        One transaction: requests, pending batches, rollups, monitors and pings.
        Later calls with this key answer 401.
        """
        key_id = require_key()
        with get_engine().begin() as conn:
            delete_key_data(conn, key_id)
        log.info("deleted all data of key id=%s", key_id)
