"""Consumers: each named caller of the key's API (or each group of them) with its
requests, error rate, p95 latency, last request and top endpoints over a period."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from flask.views import MethodView

from server.api.base import Blueprint
from server.api.consumers.schemas import ConsumerSchema, ConsumersQuerySchema
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.stats import consumers as consumer_stats
from server.stats.filters import Filters, window_for

blp = Blueprint("consumers", __name__, description="Consumers")


@blp.route("/consumers")
class Consumers(MethodView):
    @blp.arguments(ConsumersQuerySchema, location="query")
    @blp.response(
        200,
        ConsumerSchema(many=True),
        headers={"X-Total-Count": {"description": "How many had requests in the period",
                                   "schema": {"type": "integer"}}},
    )  # fmt: skip
    @blp.alt_response(400, schema=ErrorSchema, description="An unknown or malformed parameter.")
    @blp.keyed()
    def get(self, args):
        """The key's consumers (or consumer groups) with requests in the period, busiest first

        Sent by our client as `consumer` (docs/capture.md). Exact over the period.
        """
        key_id = require_key()
        period = args["period"]
        found = consumer_stats.table(
            key_id, Filters(period=period), window_for(period), args["by"], args["limit"]
        )
        total = int(found["total"].iloc[0]) if len(found) else 0
        out = []
        for row in found.to_dict("records"):
            p95 = row["p95"]
            out.append({
                "id": row["name"],
                "name": row.get("display_name"),
                "group": row.get("group"),
                "requests": int(row["requests"]),
                "errors": int(row["errors"]),
                "error_rate": float(row["error_rate"]),
                "p95": None if p95 is None or (isinstance(p95, float) and math.isnan(p95))
                else float(p95),
                "last_seen": datetime.fromtimestamp(int(row["last_us"]) / 1e6, UTC),
                "top_endpoints": list(row["top_endpoints"]),
            })  # fmt: skip
        return out, {"X-Total-Count": str(total)}
