"""Ingest health: what a key's clients sent, and what was refused and why."""

from __future__ import annotations

from flask.views import MethodView

from server.api.base import Blueprint
from server.api.ingest_health.schemas import IngestHealthSchema
from server.auth import require_key
from server.db import utcnow
from server.ingest_health.status import health

blp = Blueprint("ingest_health", __name__, description="Ingest health per key")


@blp.route("/ingest/health")
class IngestHealth(MethodView):
    @blp.response(200, IngestHealthSchema)
    @blp.keyed()
    def get(self):
        """What the key's clients sent, and what was refused and why

        The last batch and each client (framework and User-Agent), rows accepted and
        refused per UTC day for 14 days with the refusals counted by field, and the
        newest 100 refused rows with their reasons (secret values masked). Counted as
        each batch is answered. While nothing has arrived, `checks` says what to check.
        """
        return health(require_key(), utcnow())
