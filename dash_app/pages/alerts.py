"""The alerts page: rules and their state, channels, recent incidents; create, delete, test.

Signed-in keys only (the demo key has no one to notify). Every callback that changes
something carries the page's CSRF token (server.csrf) and refuses without it, on top
of the same-origin check every dashboard POST gets.
"""

from __future__ import annotations

import logging

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from dash_app.pages.alert_tables import channels_list, incidents_table, rules_table
from server.alerts import deliveries, notify
from server.alerts import rules as alerts
from server.csrf import csrf_ok, csrf_token
from server.db import get_engine
from server.models import monitors

log = logging.getLogger(__name__)

REFUSED = "Refused: this form's token is missing or stale (reload the page and try again)."
KIND_LABELS = {
    "error_rate": "Error rate above X %",
    "latency_p95": "p95 response time above Y ms",
    "no_traffic": "No traffic for N minutes",
    "monitor_down": "Monitor down for K checks",
    "new_error": "A new error (group first seen)",
    "error_regression": "A resolved error comes back",
    "release_regression": "An endpoint worse after a deploy",
}
# The form's fields each kind uses (server.alerts.rules.check_rule clears the others);
# name and channels are every kind's.
KIND_FIELDS = {
    "error_rate": ("threshold", "window", "min", "4xx"),
    "latency_p95": ("threshold", "window", "min", "endpoint"),
    "no_traffic": ("window",),
    "monitor_down": ("monitor", "k"),
    "new_error": ("window",),
    "error_regression": ("window",),
    "release_regression": ("threshold", "window", "min"),
}
FIELDS = ("threshold", "window", "min", "4xx", "endpoint", "monitor", "k")
HIDDEN = {"display": "none"}
# Where the channels to tick would be, while the key has none (an empty label before).
NO_CHANNELS = html.Span(
    "No channels yet: add one under Channels, then tick it here (a rule without channels "
    "still opens incidents, listed on this page).",
    className="muted",
)


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            dcc.Store(id="al-csrf", data=csrf_token()),
            dcc.Store(id="al-changed", data=0),
            dcc.Interval(id="al-tick", interval=30_000),
            html.Section([html.H3("Rules"), html.Div(id="al-rules")], className="panel wide"),
            html.Section(
                [html.H3("Recent incidents"), html.Div(id="al-incidents")], className="panel wide"
            ),
            html.Section([html.H3("New rule"), _rule_form()], className="panel half-wide"),
            html.Section(
                [html.H3("Channels"), html.Div(id="al-channels"), _channel_form()],
                className="panel half",
            ),
        ],
        className="alerts grid",
    )


def _field(label: str, control, name: str | None = None) -> html.Label:
    """A labelled control; `name` makes it one the kind picker shows or hides."""
    props = {"id": f"al-f-{name}"} if name else {}
    return html.Label(
        [html.Span(label, className="stat-label"), control], className="field", **props
    )


def _rule_form() -> html.Div:
    return html.Div(
        [
            _field("Name", dcc.Input(id="al-rule-name", type="text", maxLength=100)),
            _field(
                "Kind",
                dcc.Dropdown(
                    id="al-rule-kind",
                    options=[{"label": v, "value": k} for k, v in KIND_LABELS.items()],
                    value="error_rate",
                    clearable=False,
                ),
            ),
            _field(
                "Threshold (%, ms, or % worse)",
                dcc.Input(id="al-rule-threshold", type="number"),
                "threshold",
            ),
            _field(
                "Window (minutes)",
                dcc.Input(id="al-rule-window", type="number", value=5),
                "window",
            ),
            _field(
                "At least N requests",
                dcc.Input(id="al-rule-min", type="number", value=10),
                "min",
            ),
            html.Div(
                dcc.Checklist(
                    id="al-rule-4xx", options=[{"label": " count 4xx as errors", "value": "4xx"}]
                ),
                id="al-f-4xx",
            ),
            _field(
                "Endpoint (optional, p95)",
                dcc.Input(id="al-rule-endpoint", type="text", placeholder="GET /items/{id}"),
                "endpoint",
            ),
            _field("Monitor", dcc.Dropdown(id="al-rule-monitor"), "monitor"),
            _field(
                "Failed checks in a row",
                dcc.Input(id="al-rule-k", type="number", value=3),
                "k",
            ),
            _field(
                "Notify",
                html.Div(
                    [dcc.Checklist(id="al-rule-channels"), html.Div(id="al-rule-no-channels")]
                ),
            ),
            html.Button("Create rule", id="al-rule-create", className="button"),
            html.Div(id="al-rule-msg", className="form-msg"),
        ],
        className="alert-form",
    )


def _channel_form() -> html.Div:
    return html.Div(
        [
            html.H4("Add a channel"),
            _field(
                "Kind",
                dcc.Dropdown(
                    id="al-ch-kind",
                    options=[
                        {"label": "Webhook (signed JSON)", "value": "webhook"},
                        {"label": "Slack incoming webhook", "value": "slack"},
                        {"label": "Email", "value": "email"},
                    ],
                    value="webhook",
                    clearable=False,
                ),
            ),
            _field("Name", dcc.Input(id="al-ch-name", type="text", maxLength=100)),
            _field("URL or email address", dcc.Input(id="al-ch-target", type="text")),
            html.Button("Add channel", id="al-ch-create", className="button"),
            html.Div(id="al-ch-msg", className="form-msg"),
        ],
        className="alert-form",
    )


def _number(value):
    return None if value in (None, "") else value


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= alerts.MAX_ID


def _signed_in(conn):
    from dash_app.session import signed_in_key_id

    return signed_in_key_id(conn)


def field_styles(kind) -> list[dict]:
    """Each optional field's style for the picked kind: the ones it does not use hidden."""
    used = KIND_FIELDS.get(kind if isinstance(kind, str) else "", KIND_FIELDS["error_rate"])
    return [{} if name in used else HIDDEN for name in FIELDS]


def register(app) -> None:
    app.callback(
        *[Output(f"al-f-{name}", "style") for name in FIELDS],
        Input("al-rule-kind", "value"),
    )(field_styles)

    @app.callback(
        Output("al-rules", "children"),
        Output("al-channels", "children"),
        Output("al-incidents", "children"),
        Output("al-rule-channels", "options"),
        Output("al-rule-monitor", "options"),
        Output("al-rule-no-channels", "children"),
        Input("al-tick", "n_intervals"),
        Input("al-changed", "data"),
    )
    def show(_tick, _changed):
        with get_engine().connect() as conn:
            key_id = _signed_in(conn)
            if key_id is None:
                notice = html.Div("Sign in first.", className="notice")
                return notice, None, None, [], [], None
            rules = alerts.list_rules(conn, key_id)
            channels = alerts.list_channels(conn, key_id)
            incidents = deliveries.recent_incidents(conn, key_id, limit=20)
            owned = conn.execute(
                monitors.select().where(monitors.c.key_id == key_id).order_by(monitors.c.id)
            ).all()
        names = {c["id"]: c["name"] for c in channels}
        return (
            rules_table(rules, names),
            channels_list(channels),
            incidents_table(incidents, names),
            [{"label": f" {c['name']} ({c['kind']})", "value": c["id"]} for c in channels],
            [{"label": f"{m.method} {m.url}", "value": m.id} for m in owned],
            None if channels else NO_CHANNELS,
        )

    @app.callback(
        Output("al-rule-msg", "children"),
        Output("al-changed", "data", allow_duplicate=True),
        Input("al-rule-create", "n_clicks"),
        State("al-csrf", "data"),
        State("al-rule-name", "value"),
        State("al-rule-kind", "value"),
        State("al-rule-threshold", "value"),
        State("al-rule-window", "value"),
        State("al-rule-min", "value"),
        State("al-rule-4xx", "value"),
        State("al-rule-endpoint", "value"),
        State("al-rule-monitor", "value"),
        State("al-rule-k", "value"),
        State("al-rule-channels", "value"),
        State("al-changed", "data"),
        prevent_initial_call=True,
    )
    def create_rule(_n, token, name, kind, threshold, window, minimum, four, endpoint,
                    monitor_id, k, channel_ids, changed):  # fmt: skip
        if not csrf_ok(token):
            return html.Span(REFUSED, className="error"), no_update
        rule = {
            "name": name,
            "kind": kind,
            "threshold": _number(threshold),
            "window_minutes": _number(window),
            "min_requests": _number(minimum),
            "include_4xx": bool(four),
            "endpoint": endpoint,
            "monitor_id": monitor_id,
            "consecutive": _number(k),
            "channel_ids": channel_ids or [],
        }
        try:
            with get_engine().begin() as conn:
                key_id = _signed_in(conn)
                if key_id is None:
                    return html.Span("Sign in first.", className="error"), no_update
                created = alerts.create_rule(conn, key_id, rule)
        except (alerts.AlertInputError, alerts.LimitReached, TypeError, ValueError) as exc:
            return html.Span(str(exc) or "Too many rules.", className="error"), no_update
        return f"Rule '{created['name']}' created.", (changed or 0) + 1

    @app.callback(
        Output("al-ch-msg", "children"),
        Output("al-changed", "data", allow_duplicate=True),
        Input("al-ch-create", "n_clicks"),
        State("al-csrf", "data"),
        State("al-ch-kind", "value"),
        State("al-ch-name", "value"),
        State("al-ch-target", "value"),
        State("al-changed", "data"),
        prevent_initial_call=True,
    )
    def create_channel(_n, token, kind, name, target, changed):
        from flask import current_app

        if not csrf_ok(token):
            return html.Span(REFUSED, className="error"), no_update
        settings = current_app.config["SETTINGS"]
        target = target or None
        url, email = (None, target) if kind == "email" else (target, None)
        try:
            # The API's own checks (server.alerts.rules), whatever the form was sent.
            checked = alerts.check_channel_target(kind, url, email, settings)
            with get_engine().begin() as conn:
                key_id = _signed_in(conn)
                if key_id is None:
                    return html.Span("Sign in first.", className="error"), no_update
                channel, salt = alerts.create_channel(conn, key_id, kind, name, checked)
        except (alerts.AlertInputError, alerts.LimitReached) as exc:
            return html.Span(str(exc) or "Too many channels.", className="error"), no_update
        if not salt:
            return f"Channel '{channel['name']}' added.", (changed or 0) + 1
        secret = notify.channel_secret(settings.SECRET_KEY, salt)
        shown = [
            f"Channel '{channel['name']}' added. Its signing secret, shown once: ",
            html.Code(secret, id="al-ch-secret"),
        ]
        return shown, (changed or 0) + 1

    @app.callback(
        Output("al-ch-msg", "children", allow_duplicate=True),
        Output("al-changed", "data", allow_duplicate=True),
        Input({"type": "al-rule-del", "index": ALL}, "n_clicks"),
        Input({"type": "al-ch-del", "index": ALL}, "n_clicks"),
        Input({"type": "al-ch-test", "index": ALL}, "n_clicks"),
        State("al-csrf", "data"),
        State("al-changed", "data"),
        prevent_initial_call=True,
    )
    def act(rule_del, ch_del, ch_test, token, changed):
        clicked = ctx.triggered_id
        if not clicked or not ctx.triggered[0].get("value"):
            return no_update, no_update  # the buttons were drawn afresh; none was clicked
        if not csrf_ok(token):
            return html.Span(REFUSED, className="error"), no_update
        what, target_id = clicked.get("type"), clicked.get("index")
        if what not in ("al-rule-del", "al-ch-del", "al-ch-test") or not _is_id(target_id):
            return html.Span("No such rule or channel.", className="error"), no_update
        with get_engine().begin() as conn:
            key_id = _signed_in(conn)
            if key_id is None:
                return html.Span("Sign in first.", className="error"), no_update
            if what == "al-rule-del":
                alerts.delete_rule(conn, key_id, target_id)
                note = "Rule deleted."
            elif what == "al-ch-del":
                alerts.delete_channel(conn, key_id, target_id)
                note = "Channel deleted."
        if what == "al-ch-test":
            sent = deliveries.send_test(key_id, target_id)
            note = (
                "Test notification queued: it is sent within seconds."
                if sent
                else "No such channel."
            )
        return note, (changed or 0) + 1
