"""Alerts: a key's rules, the channels they notify, and the incidents they opened."""

from __future__ import annotations

import logging

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from server.alerts import deliveries, notify
from server.alerts import rules as alerts
from server.api.alerts.schemas import (
    ChannelCreateSchema,
    ChannelSchema,
    DeliverySchema,
    IncidentSchema,
    NewChannelSchema,
    RuleCreateSchema,
    RuleSchema,
    RuleUpdateSchema,
)
from server.api.base import Blueprint
from server.api.schemas import ErrorSchema
from server.auth import require_key
from server.db import get_engine
from server.keys.api_keys import touch_key

log = logging.getLogger(__name__)
blp = Blueprint("alerts", __name__, description="Alert rules, channels and incidents")


NO_RULE = "No such alert rule for this key."
NO_CHANNEL = "No such channel for this key."


@blp.route("/alerts")
class Rules(MethodView):
    @blp.response(200, RuleSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's alert rules and their state (ok or firing)

        Rules are evaluated every minute.
        """
        key_id = require_key()
        with get_engine().connect() as conn:
            return alerts.list_rules(conn, key_id)

    @blp.arguments(RuleCreateSchema)
    @blp.response(201, RuleSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A field is missing or invalid.")
    @blp.keyed()
    @blp.alt_response(409, schema=ErrorSchema, description="The key has 50 rules already.")
    def post(self, body):
        """Create an alert rule

        One notification goes to each of its channels when an incident opens, and one
        when it resolves.
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                rule = alerts.create_rule(conn, key_id, body)
                touch_key(conn, key_id)
        except alerts.AlertInputError as exc:
            abort(400, message=str(exc))
        except alerts.LimitReached as exc:  # names the cap
            abort(409, message=str(exc))
        log.info("key id=%s created alert rule id=%s", key_id, rule["id"])
        return rule


@blp.route("/alerts/<int(max=2147483647):rule_id>")
class RuleById(MethodView):
    @blp.response(200, RuleSchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_RULE)
    def get(self, rule_id):
        """One alert rule"""
        key_id = require_key()
        with get_engine().connect() as conn:
            rule = alerts.get_rule(conn, key_id, rule_id)
        if rule is None:
            abort(404, message=NO_RULE)
        return rule

    @blp.arguments(RuleUpdateSchema)
    @blp.response(200, RuleSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="A field is missing or invalid.")
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_RULE)
    def patch(self, body, rule_id):
        """Change an alert rule

        Only the fields sent change (`channel_ids` replaces the rule's channels); the
        rule as a whole must still be valid. An open incident stays open until the
        rule, as changed, no longer fires.
        """
        key_id = require_key()
        try:
            with get_engine().begin() as conn:
                rule = alerts.update_rule(conn, key_id, rule_id, body)
        except alerts.AlertInputError as exc:
            abort(400, message=str(exc))
        if rule is None:
            abort(404, message=NO_RULE)
        log.info("key id=%s changed alert rule id=%s", key_id, rule_id)
        return rule

    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_RULE)
    def delete(self, rule_id):
        """Delete an alert rule and its incidents"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not alerts.delete_rule(conn, key_id, rule_id):
                abort(404, message=NO_RULE)
        log.info("key id=%s deleted alert rule id=%s", key_id, rule_id)


@blp.route("/alerts/incidents")
class Incidents(MethodView):
    @blp.response(200, IncidentSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's 50 latest incidents, each with its deliveries and their attempts"""
        key_id = require_key()
        with get_engine().connect() as conn:
            return deliveries.recent_incidents(conn, key_id)


@blp.route("/alerts/channels")
class Channels(MethodView):
    @blp.response(200, ChannelSchema(many=True))
    @blp.keyed()
    def get(self):
        """The key's notification channels"""
        key_id = require_key()
        with get_engine().connect() as conn:
            return alerts.list_channels(conn, key_id)

    @blp.arguments(ChannelCreateSchema)
    @blp.response(201, NewChannelSchema)
    @blp.alt_response(
        400,
        schema=ErrorSchema,
        description="A field is missing or invalid, the URL's host is not public (see "
        "MONITOR_ALLOW_PRIVATE), or email without SMTP_URL.",
    )
    @blp.keyed()
    @blp.alt_response(409, schema=ErrorSchema, description="The key has 20 channels already.")
    def post(self, body):
        """Create a channel: a signed webhook, a Slack incoming webhook or an email address

        A webhook's signing secret is in this answer only.
        """
        key_id = require_key()
        settings = current_app.config["SETTINGS"]
        try:
            target = alerts.check_channel_target(
                body["kind"], body.get("url"), body.get("email"), settings
            )
            with get_engine().begin() as conn:
                channel, salt = alerts.create_channel(
                    conn, key_id, body["kind"], body["name"], target
                )
        except alerts.AlertInputError as exc:
            abort(400, message=str(exc))
        except alerts.LimitReached as exc:  # names the cap
            abort(409, message=str(exc))
        secret = notify.channel_secret(settings.SECRET_KEY, salt) if salt else None
        log.info("key id=%s created %s channel id=%s", key_id, channel["kind"], channel["id"])
        return {**channel, "secret": secret}


@blp.route("/alerts/channels/<int(max=2147483647):channel_id>")
class ChannelById(MethodView):
    @blp.response(204)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_CHANNEL)
    def delete(self, channel_id):
        """Delete a channel (rules stop notifying it)"""
        key_id = require_key()
        with get_engine().begin() as conn:
            if not alerts.delete_channel(conn, key_id, channel_id):
                abort(404, message=NO_CHANNEL)
        log.info("key id=%s deleted channel id=%s", key_id, channel_id)


@blp.route("/alerts/channels/<int(max=2147483647):channel_id>/test")
class ChannelTest(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_CHANNEL)
    def post(self, channel_id):
        """Send a test notification on a channel

        Sent by a worker within seconds and retried like any notification; GET
        /api/alerts/channels/<id>/test shows how the latest tests went.
        """
        key_id = require_key()
        delivery_id = deliveries.send_test(key_id, channel_id)
        if delivery_id is None:
            abort(404, message=NO_CHANNEL)
        with get_engine().connect() as conn:
            return deliveries.delivery(conn, delivery_id)

    @blp.response(200, DeliverySchema(many=True))
    @blp.keyed()
    @blp.alt_response(404, schema=ErrorSchema, description=NO_CHANNEL)
    def get(self, channel_id):
        """The channel's test notifications, oldest first"""
        key_id = require_key()
        with get_engine().connect() as conn:
            if alerts.get_channel(conn, key_id, channel_id) is None:
                abort(404, message=NO_CHANNEL)
            return deliveries.test_deliveries(conn, channel_id)
