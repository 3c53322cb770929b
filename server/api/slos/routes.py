"""SLOs: a key's service level objectives, each with its SLI, error budget and burn rates."""

from __future__ import annotations

import logging

from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.api.slos.schemas import SloCreateSchema, SloDetailSchema, SloSchema, SloUpdateSchema
from server.auth import require_key
from server.db import get_engine, utcnow
from server.keys.api_keys import touch_key
from server.slos import status, store

log = logging.getLogger(__name__)
blp = Blueprint("slos", __name__, description="Service level objectives and error budgets")

NO_SLO = "No such SLO for this key."


def _with_status(key_id: int, found: list[dict], burn_down: bool = False) -> list[dict]:
    measured = status.statuses(key_id, found, utcnow())
    out = []
    for slo, state in zip(found, measured, strict=True):
        slo = {**slo, "status": state.as_dict()}
        if burn_down:
            slo["burn_down"] = state.burn_down()
        out.append(slo)
    return out


@blp.route("/slos")
class Slos(MethodView):
    @blp.response(200, SloSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's SLOs, each with its SLI, error budget and burn rates now

        All exact, from every stored row of the rolling window.
        """
        key_id = require_key()
        with get_engine().connect() as conn:
            found = store.list_slos(conn, key_id)
        return _with_status(key_id, found)

    @blp.arguments(SloCreateSchema)
    @blp.response(201, SloDetailSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A field is missing or invalid.")
    @blp.keyed()
    @blp.alt_response(409, schema=ErrorSchema, description="The key has 50 SLOs already.")
    def post(self, body):
        """Create an SLO

        With `alerts` (the default) it comes with two alert rules: a fast burn (14.4x the
        sustainable rate over 1 h and 5 min) and a slow burn (6x over 6 h and 30 min, or
        1x over 3 days and 6 h), notifying `channel_ids`.
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                slo = store.create_slo(conn, key_id, body)
                touch_key(conn, key_id)
        except store.SloInputError as exc:
            abort(400, message=str(exc))
        except (store.LimitReached, store.alert_rules_store.LimitReached):
            abort(409, message="This key has too many SLOs or alert rules; delete one first.")
        log.info("key id=%s created SLO id=%s", key_id, slo["id"])
        return _with_status(key_id, [slo], burn_down=True)[0]


@blp.route("/slos/<int(max=2147483647):slo_id>")
class SloById(MethodView):
    @blp.response(200, SloDetailSchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_SLO)
    def get(self, slo_id):
        """One SLO, with its budget's burn-down over the window"""
        key_id = require_key()
        with get_engine().connect() as conn:
            slo = store.get_slo(conn, key_id, slo_id)
        if slo is None:
            abort(404, message=NO_SLO)
        return _with_status(key_id, [slo], burn_down=True)[0]

    @blp.arguments(SloUpdateSchema)
    @blp.response(200, SloDetailSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A field is missing or invalid.")
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_SLO)
    def patch(self, body, slo_id):
        """Change an SLO

        Only the fields sent change; the SLO as a whole must still be valid. Its alert
        rules follow it (their channels change through /api/alerts).
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                slo = store.update_slo(conn, key_id, slo_id, body)
        except store.SloInputError as exc:
            abort(400, message=str(exc))
        if slo is None:
            abort(404, message=NO_SLO)
        log.info("key id=%s changed SLO id=%s", key_id, slo_id)
        return _with_status(key_id, [slo], burn_down=True)[0]

    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_SLO)
    def delete(self, slo_id):
        """Delete an SLO with its alert rules and their incidents"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not store.delete_slo(conn, key_id, slo_id):
                abort(404, message=NO_SLO)
        log.info("key id=%s deleted SLO id=%s", key_id, slo_id)
