"""Deploys: a key's releases, and the comparison of every endpoint before and after one."""

from __future__ import annotations

import logging

from flask.views import MethodView
from flask_smorest import abort

from server.api.base import Blueprint
from server.api.deploys.schemas import (
    ComparisonArgs,
    ComparisonSchema,
    DeployCreateSchema,
    DeployListArgs,
    DeploySchema,
)
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine, utcnow
from server.deploys import comparison, store

log = logging.getLogger(__name__)
blp = Blueprint("deploys", __name__, description="Deploys and release comparisons")

NO_DEPLOY = "No such deploy for this key."


@blp.route("/deploys")
class Deploys(MethodView):
    @blp.arguments(DeployListArgs, location="query")
    @blp.response(200, DeploySchema(many=True))
    @blp.keyed()
    def get(self, args):
        """The key's deploys, newest first

        With `hostname`: those to that host and those to every host.
        """
        key_id = require_key()
        since, until = args.get("since"), args.get("until")
        with get_engine().connect() as conn:
            return store.list_deploys(
                conn,
                key_id,
                None if since is None else store.us(since),
                None if until is None else store.us(until),
                args.get("hostname"),
                args["limit"],
            )

    @blp.arguments(DeployCreateSchema)
    @blp.response(201, DeploySchema)
    @blp.alt_response(
        200, schema=DeploySchema, description="only_if_changed: the same version as the last."
    )
    @blp.alt_response(400, schema=ErrorSchema, description="A field is missing or invalid.")
    @blp.keyed()
    def post(self, body):
        """Record a deploy

        It shows as a marker on the dashboard's time series, and its release comparison
        at /api/deploys/<id>/comparison. A key keeps its newest 10,000 deploys. With
        `only_if_changed` (what our client sends when `Config.app_version` is set), it is
        recorded only if the last deploy recorded for the key and hostname has another
        version; else the answer is 200 with that one.
        """
        key_id = require_key()
        only_if_changed = body.pop("only_if_changed", False)
        try:
            with get_engine().begin() as conn:
                if only_if_changed:
                    deploy, recorded = store.record_if_changed(conn, key_id, body)
                else:
                    deploy, recorded = store.create_deploy(conn, key_id, body), True
        except store.DeployInputError as exc:
            abort(400, message=str(exc))
        if not recorded:
            return deploy, 200
        log.info("key id=%s recorded deploy id=%s", key_id, deploy["id"])
        return deploy


@blp.route("/deploys/<int(max=9007199254740991):deploy_id>")
class DeployById(MethodView):
    @blp.response(200, DeploySchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_DEPLOY)
    def get(self, deploy_id):
        """One deploy"""
        key_id = require_key()
        with get_engine().connect() as conn:
            deploy = store.get_deploy(conn, key_id, deploy_id)
        if deploy is None:
            abort(404, message=NO_DEPLOY)
        return deploy

    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_DEPLOY)
    def delete(self, deploy_id):
        """Delete a deploy"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not store.delete_deploy(conn, key_id, deploy_id):
                abort(404, message=NO_DEPLOY)
        log.info("key id=%s deleted deploy id=%s", key_id, deploy_id)


@blp.route("/deploys/<int(max=9007199254740991):deploy_id>/comparison")
class Comparison(MethodView):
    @blp.arguments(ComparisonArgs, location="query")
    @blp.response(200, ComparisonSchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_DEPLOY)
    def get(self, args, deploy_id):
        """Every endpoint before and after a deploy, the worst first

        Requests, 5xx error rate, p50 and p95 over `window_minutes` before the deploy and
        as long after it (both shortened to the time since the deploy), of the deploy's
        host (or every host). A change is beyond noise when the 99 % intervals of a
        percentile do not overlap, or when the error rates differ with |z| > 3.
        """
        key_id = require_key()
        with get_engine().connect() as conn:
            deploy = store.get_deploy(conn, key_id, deploy_id)
        if deploy is None:
            abort(404, message=NO_DEPLOY)
        return comparison.compare(key_id, deploy, args["window_minutes"], utcnow())
