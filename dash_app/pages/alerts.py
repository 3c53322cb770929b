"""The alerts page: rules and their state, channels, recent incidents; create, delete, test.

Signed-in keys only (the demo key has no one to notify). Every callback that changes
something carries the page's CSRF token (server.csrf) and refuses without it, on top
of the same-origin check every dashboard POST gets.
"""

from __future__ import annotations

import logging

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

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
}


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


def _field(label: str, control) -> html.Label:
    return html.Label([html.Span(label, className="stat-label"), control], className="field")


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
            _field("Threshold (% or ms)", dcc.Input(id="al-rule-threshold", type="number")),
            _field("Window (minutes)", dcc.Input(id="al-rule-window", type="number", value=5)),
            _field("At least N requests", dcc.Input(id="al-rule-min", type="number", value=10)),
            dcc.Checklist(
                id="al-rule-4xx", options=[{"label": " count 4xx as errors", "value": "4xx"}]
            ),
            _field(
                "Endpoint (optional, p95)",
                dcc.Input(id="al-rule-endpoint", type="text", placeholder="GET /items/{id}"),
            ),
            _field("Monitor", dcc.Dropdown(id="al-rule-monitor")),
            _field("Failed checks in a row", dcc.Input(id="al-rule-k", type="number", value=3)),
            _field("Notify", dcc.Checklist(id="al-rule-channels")),
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


def _rules_table(rules: list[dict], channel_names: dict) -> html.Div:
    if not rules:
        return html.P("No rules yet: create one below.", className="notice")
    rows = []
    for rule in rules:
        state = html.Span(rule["state"], className=f"state state-{rule['state']}")
        notify = ", ".join(channel_names.get(c, str(c)) for c in rule["channel_ids"]) or "–"
        rows.append(
            html.Tr(
                [
                    html.Td(rule["name"]),
                    html.Td(describe(rule)),
                    html.Td(state),
                    html.Td(notify),
                    html.Td(
                        html.Button(
                            "Delete",
                            id={"type": "al-rule-del", "index": rule["id"]},
                            className="button small",
                        )
                    ),
                ],
                id=f"al-rule-{rule['id']}",
            )
        )
    head = html.Tr([html.Th(h) for h in ("Rule", "Condition", "State", "Notifies", "")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="alerts-table")


def describe(rule: dict) -> str:
    """A rule's condition in words."""
    kind = rule["kind"]
    if kind == "error_rate":
        errors = "4xx+5xx" if rule["include_4xx"] else "5xx"
        return (
            f"{errors} above {rule['threshold']:g}% over {rule['window_minutes']} min "
            f"(at least {rule['min_requests']} requests)"
        )
    if kind == "latency_p95":
        scope = f" on {rule['endpoint']}" if rule["endpoint"] else ""
        return f"p95{scope} above {rule['threshold']:g} ms over {rule['window_minutes']} min"
    if kind == "no_traffic":
        return f"no requests for {rule['window_minutes']} min (when usually busy)"
    return f"monitor {rule['monitor_id']} down for {rule['consecutive']} checks in a row"


def _channels_list(channels: list[dict]) -> html.Div:
    if not channels:
        return html.P("No channels yet.", className="notice")
    items = []
    for channel in channels:
        items.append(
            html.Li(
                [
                    html.Span(f"{channel['name']} ({channel['kind']}): ", className="channel-name"),
                    html.Span(_shown_target(channel), className="channel-target"),
                    html.Button(
                        "Send test",
                        id={"type": "al-ch-test", "index": channel["id"]},
                        className="button small",
                    ),
                    html.Button(
                        "Delete",
                        id={"type": "al-ch-del", "index": channel["id"]},
                        className="button small",
                    ),
                ],
                id=f"al-channel-{channel['id']}",
            )
        )
    return html.Ul(items, className="channels")


def _shown_target(channel: dict) -> str:
    """A Slack or webhook URL's path is often its secret: show the host only."""
    if channel["kind"] == "email":
        return channel["target"]
    from urllib.parse import urlsplit

    return f"{urlsplit(channel['target']).netloc}/…"


def _incidents_table(incidents: list[dict], channel_names: dict) -> html.Div:
    if not incidents:
        return html.P("No incidents yet.", className="notice")
    rows = []
    for incident in incidents:
        deliveries = "; ".join(_delivery_line(d, channel_names) for d in incident["deliveries"])
        end = incident["resolved_at"]
        rows.append(
            html.Tr(
                [
                    html.Td(incident["rule_name"]),
                    html.Td(f"{incident['started_at']:%Y-%m-%d %H:%M} UTC"),
                    html.Td(f"{end:%Y-%m-%d %H:%M} UTC" if end else "open"),
                    html.Td(incident["summary"]),
                    html.Td(deliveries or "–"),
                ]
            )
        )
    head = html.Tr([html.Th(h) for h in ("Rule", "Started", "Resolved", "What", "Notifications")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="alerts-table")


def _delivery_line(delivery: dict, channel_names: dict) -> str:
    """'open → ops: sent, 1 attempt (last 12:03 UTC)', with the last error if any."""
    name = channel_names.get(delivery["channel_id"], delivery["channel_id"])
    line = f"{delivery['event']} → {name}: {delivery['status']}"
    if delivery["last_error"]:
        line += f" ({delivery['last_error']})"
    attempts = delivery["attempts"]
    line += f", {attempts} attempt{'s' if attempts != 1 else ''}"
    if delivery["attempt_log"]:
        line += f" (last {delivery['attempt_log'][-1]['at']:%H:%M} UTC)"
    return line


def _signed_in(conn):
    from dash_app.session import signed_in_key_id

    return signed_in_key_id(conn)


def register(app) -> None:
    @app.callback(
        Output("al-rules", "children"),
        Output("al-channels", "children"),
        Output("al-incidents", "children"),
        Output("al-rule-channels", "options"),
        Output("al-rule-monitor", "options"),
        Input("al-tick", "n_intervals"),
        Input("al-changed", "data"),
    )
    def show(_tick, _changed):
        with get_engine().connect() as conn:
            key_id = _signed_in(conn)
            if key_id is None:
                notice = html.Div("Sign in first.", className="notice")
                return notice, None, None, [], []
            rules = alerts.list_rules(conn, key_id)
            channels = alerts.list_channels(conn, key_id)
            incidents = deliveries.recent_incidents(conn, key_id, limit=20)
            owned = conn.execute(
                monitors.select().where(monitors.c.key_id == key_id).order_by(monitors.c.id)
            ).all()
        names = {c["id"]: c["name"] for c in channels}
        return (
            _rules_table(rules, names),
            _channels_list(channels),
            _incidents_table(incidents, names),
            [{"label": f" {c['name']} ({c['kind']})", "value": c["id"]} for c in channels],
            [{"label": f"{m.method} {m.url}", "value": m.id} for m in owned],
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
        target = (target or "").strip()
        url, email = (None, target) if kind == "email" else (target, None)
        try:
            checked = alerts.check_channel_target(kind, url or None, email or None, settings)
            with get_engine().begin() as conn:
                key_id = _signed_in(conn)
                if key_id is None:
                    return html.Span("Sign in first.", className="error"), no_update
                channel, salt = alerts.create_channel(conn, key_id, kind, name or "", checked)
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
        what, target_id = clicked["type"], clicked["index"]
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
