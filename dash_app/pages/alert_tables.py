"""The alerts page's tables: rules with their conditions in words, channels, and recent
incidents with their notifications."""

from __future__ import annotations

from dash import html

from server.slos import burn


def rules_table(rules: list[dict], channel_names: dict) -> html.Div:
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
    if kind == "new_error":
        return f"an error group first seen in the last {rule['window_minutes']} min"
    if kind == "error_regression":
        return f"a resolved error group occurs again (checked over {rule['window_minutes']} min)"
    if kind == "release_regression":
        return (
            f"after a deploy, an endpoint worse beyond noise by {rule['threshold']:g}% or more "
            f"({rule['window_minutes']} min each side, at least {rule['min_requests']} "
            "requests a side)"
        )
    if kind in burn.CONDITIONS:
        return f"SLO {rule['slo_id']}, {burn.describe(kind)}"
    return f"monitor {rule['monitor_id']} down for {rule['consecutive']} checks in a row"


def channels_list(channels: list[dict]) -> html.Div:
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


def incidents_table(incidents: list[dict], channel_names: dict) -> html.Div:
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
