"""What the errors pages and the explorer draw of an error: groups, stack traces, validation
errors and the masked request and response a request carried (docs/capture.md)."""

from __future__ import annotations

import json

from dash import dcc, get_relative_path, html

from dash_app import figures
from dash_app.pages.common import number

STATE_LABELS = {"open": "Open", "resolved": "Resolved", "ignored": "Ignored"}
SORT_LABELS = {"count": "Count", "users": "Users", "consumers": "Consumers",
               "last_seen": "Last seen"}  # fmt: skip
SPARK_CONFIG = {"staticPlot": True, "displayModeBar": False}


def state_badge(state: str, regressed: bool = False) -> html.Span:
    label = "Regressed" if regressed and state == "open" else STATE_LABELS.get(state, state)
    kind = "regressed" if regressed and state == "open" else state
    return html.Span(label, className=f"state state-{kind}")


NUMBERS = ("count", "users", "consumers")


def _head(labels: list[tuple[str, str]], sort: str) -> html.Thead:
    cells = []
    for key, label in labels:
        classes = ["sorted" * (key == sort), "num" * (key in NUMBERS)]
        shown = f"{label} ▾" if key == sort else label
        cells.append(html.Th(shown, className=" ".join(c for c in classes if c)))
    return html.Thead(html.Tr(cells))


def groups_table(listing, base: str, query: str, sort: str) -> html.Div:
    """One row per group: what failed and where, its state, numbers and a sparkline."""
    if not listing.rows:
        return html.P("No errors with these filters in this period.", className="notice")
    labels = [("error", "Error"), ("route", "Route"), ("state", "State"), ("count", "Count"),
              ("users", "Users"), ("consumers", "Consumers"), ("last_seen", "Last seen"),
              ("trend", f"Per {listing.unit}")]  # fmt: skip
    rows = []
    for g in listing.rows:
        href = get_relative_path(f"{base}/errors/{g['id']}") + query
        what = [
            dcc.Link(g["type"], href=href, className="group-type"),
            html.Div(g["message"], className="group-message"),
            html.Code(g["frame"], className="group-frame") if g["frame"] else None,
        ]
        spark = dcc.Graph(
            figure=figures.sparkline(listing.trends.get(g["id"])),
            config=SPARK_CONFIG,
            className="spark",
        )
        rows.append(
            html.Tr(
                [
                    html.Td(what, className="group-what"),
                    html.Td(g["route"], className="nowrap"),
                    html.Td(state_badge(g["state"], g["regressed"])),
                    html.Td(number(g["n"]), className="num"),
                    html.Td(number(g["users"]), className="num"),
                    html.Td(number(g["consumers"]), className="num"),
                    html.Td(g["last_seen"], className="nowrap"),
                    html.Td(spark, className="spark-cell"),
                ],
                id=f"er-group-{g['id']}",
            )
        )
    shown = len(listing.rows)
    note = f"The first {shown} of {listing.total:,} groups." if shown < listing.total else None
    return html.Div(
        [
            html.Table([_head(labels, sort), html.Tbody(rows)], className="data-table groups"),
            html.P(note, className="muted") if note else None,
        ]
    )


def validation_table(rows: list[dict]) -> html.Div:
    if not rows:
        return html.P("No validation errors with these filters in this period.", className="notice")
    head = html.Thead(html.Tr([html.Th(h) for h in ("Endpoint", "Field", "Error", "Count")]))
    body = [
        html.Tr(
            [
                html.Td(r["route"]),
                html.Td(html.Code(r["location"])),
                html.Td(r["type"]),
                html.Td(number(r["n"]), className="num"),
            ]
        )
        for r in rows
    ]
    return html.Table([head, html.Tbody(body)], className="data-table", id="er-validation-table")


# --- one request's error -----------------------------------------------------------------


def stack_view(stack: list, view_id: str | None = None) -> html.Div:
    """Frames as Python prints them, the raising one last; the app's own frames stand out."""
    if not stack:
        return html.P("No stack trace was sent with this exception.", className="muted")
    frames = []
    for file, line, function, in_app in stack:
        frames.append(
            html.Div(
                [
                    html.Span(file, className="frame-file"),
                    html.Span(f":{line}", className="frame-line"),
                    html.Span(" in ", className="muted"),
                    html.Span(function or "?", className="frame-function"),
                    html.Span("app", className="frame-tag") if in_app else None,
                ],
                className="frame in-app" if in_app else "frame",
            )
        )
    props = {"id": view_id} if view_id else {}
    return html.Div(
        [html.Div("Most recent call last", className="muted small"), *frames],
        className="stack",
        **props,
    )


def _pretty(body: str, body_type: str | None) -> str:
    """A JSON body indented (it was stored compact); any other text as it came."""
    if (body_type or "").split(";")[0].strip().endswith("json") or body.lstrip()[:1] in "{[":
        try:
            return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return body


def exchange_view(title: str, exchange: dict | None, view_id: str) -> html.Div:
    """A captured request or response: masked headers, query and body, with its type and size."""
    if not exchange:
        return html.Div(
            [html.H4(title), html.P("Not captured.", className="muted")],
            className="exchange",
            id=view_id,
        )
    headers = exchange.get("headers") or []
    parts = [html.H4(title)]
    if exchange.get("query"):
        parts.append(
            html.Div([html.Span("Query ", className="muted"), html.Code(exchange["query"])])
        )
    if headers:
        parts.append(
            html.Table(
                [
                    html.Tr([html.Td(name, className="header-name"), html.Td(value)])
                    for name, value in headers
                ],
                className="headers",
            )  # fmt: skip
        )
    facts = [exchange.get("body_type"), _size(exchange.get("body_size"))]
    if exchange.get("body_truncated"):
        facts.append("truncated")
    if exchange.get("body_omitted"):
        facts.append(f"body not kept: {exchange['body_omitted'].replace('_', ' ')}")
    shown = [f for f in facts if f]
    if shown:
        parts.append(html.Div(" · ".join(shown), className="muted small"))
    if exchange.get("body"):
        parts.append(
            html.Pre(_pretty(exchange["body"], exchange.get("body_type")), className="body")
        )
    elif not exchange.get("body_omitted"):
        parts.append(html.Div("No body.", className="muted small"))
    return html.Div(parts, className="exchange", id=view_id)


def _size(size) -> str | None:
    return None if size is None else f"{size:,} bytes"


def exchanges(found: dict, prefix: str) -> html.Div:
    """The request and the response side by side."""
    return html.Div(
        [
            exchange_view("Request", found.get("request"), f"{prefix}-request"),
            exchange_view("Response", found.get("response"), f"{prefix}-response"),
        ],
        className="exchanges",
    )


def request_details(found: dict, prefix: str) -> html.Div:
    """Everything a request carried besides its row (server.stats.errors.capture)."""
    parts = []
    if found.get("type"):
        parts += [
            html.H4([html.Span(found["type"], className="group-type"), " ",
                     html.Span(found.get("message") or "", className="group-message")]),
            stack_view(found.get("stack") or [], f"{prefix}-stack"),
        ]  # fmt: skip
    if found.get("validation"):
        parts += [
            html.H4("Validation errors"),
            html.Ul(
                [
                    html.Li([html.Code(location), f": {kind}"])
                    for location, kind in found["validation"]
                ],
                id=f"{prefix}-validation",
            ),  # fmt: skip
        ]
    if found.get("request") or found.get("response"):
        parts.append(exchanges(found, prefix))
    if not parts:
        return html.P(
            "This request carried no exception, validation errors or captured request and "
            "response.",
            className="notice",
            id=f"{prefix}-none",
        )
    return html.Div(parts, className="request-details")
