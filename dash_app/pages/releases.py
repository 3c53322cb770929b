"""The release comparison page: pick a deploy (the newest by default), see every endpoint's
requests, 5xx rate, p50 and p95 before and after it over equal windows, the worst first,
each change marked beyond noise or not (server.deploys.comparison)."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html

from dash_app.pages.common import number, page_path
from dash_app.session import viewer_for
from server.db import get_engine, utcnow
from server.deploys import comparison
from server.deploys import store as deploy_store

WINDOWS = [(15, "15 min"), (60, "1 hour"), (360, "6 hours"), (1440, "24 hours")]
VERDICT_CLASS = {"worse": "bad", "better": "good"}


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    dcc.Dropdown(id="rel-deploy", placeholder="Deploy", clearable=False),
                    dcc.RadioItems(
                        id="rel-window",
                        options=[{"label": label, "value": m} for m, label in WINDOWS],
                        value=comparison.DEFAULT_MINUTES,
                        inline=True,
                        className="period",
                    ),
                ],
                className="controls",
            ),
            dcc.Loading(html.Div(id="rel-table"), type="dot"),
        ],
        className="releases",
    )


def deploy_options(deploys: list[dict]) -> list[dict]:
    return [
        {
            "label": f"{d['version']} · {d['time']:%Y-%m-%d %H:%M} UTC"
            + (f" · {d['hostname']}" if d["hostname"] else ""),
            "value": d["id"],
        }
        for d in deploys
    ]


def _pair(before, after, field: str, digits: int = 0, suffix: str = "") -> str:
    a = None if before is None else before[field]
    b = None if after is None else after[field]
    return f"{number(a, digits, suffix)} → {number(b, digits, suffix)}"


def _cell(e: dict, field: str, digits: int = 0, suffix: str = "") -> html.Td:
    moved = e["changes"].get(field)
    cls = {"up": "bad", "down": "good"}.get(moved, "")
    mark = {"up": " ▲", "down": " ▼"}.get(moved, "")
    return html.Td(_pair(e["before"], e["after"], field, digits, suffix) + mark, className=cls)


def comparison_table(result: dict) -> html.Div:
    endpoints = result["endpoints"]
    if not endpoints:
        return html.P(
            "No requests in the windows around this deploy yet: the comparison needs "
            "traffic on both sides of it.",
            className="notice",
        )
    minutes = result["window_minutes"]
    head = ["Endpoint", "Verdict", "Requests", "5xx rate", "p50 ms", "p95 ms", "Worse by"]
    rows = []
    for i, e in enumerate(endpoints):
        worse = f"+{100 * e['worse_by']:.0f}%" if e["verdict"] == "worse" else ""
        rows.append(
            html.Tr(
                [
                    html.Td(e["endpoint"]),
                    html.Td(e["verdict"], className=VERDICT_CLASS.get(e["verdict"], "muted")),
                    html.Td(_pair(e["before"], e["after"], "requests")),
                    _cell(e, "error_rate", 2, "%"),
                    _cell(e, "p50"),
                    _cell(e, "p95"),
                    html.Td(worse),
                ],
                id=f"rel-row-{i}",
            )
        )
    return html.Div(
        [
            html.P(
                f"{minutes:g} minutes before the deploy against {minutes:g} minutes after. "
                "Beyond noise: the percentiles' 99 % intervals do not overlap, or the 5xx "
                "rates differ with |z| > 3.",
                className="muted",
            ),
            html.Table(
                [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
                className="data-table",
            ),
        ],
        className="panel wide",
    )


def _deploy_id(value) -> int | None:
    """The picked deploy's id, or None for anything else a forged callback may send."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
        return value
    return None


def register(app) -> None:
    @app.callback(
        Output("rel-deploy", "options"),
        Output("rel-deploy", "value"),
        Input("url", "pathname"),
    )
    def list_deploys(pathname):
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
            if viewer.kind != "key" or viewer.key_id is None:
                return [], None
            found = deploy_store.list_deploys(conn, viewer.key_id, limit=100)
        return deploy_options(found), found[0]["id"] if found else None

    @app.callback(
        Output("rel-table", "children"),
        Input("rel-deploy", "value"),
        Input("rel-window", "value"),
        State("url", "pathname"),
    )
    def show_comparison(deploy_id, minutes, pathname):
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
            if viewer.kind != "key" or viewer.key_id is None:
                return html.Div("Sign in first.", className="notice")
            deploy = None
            wanted = _deploy_id(deploy_id)
            if deploy_id is not None and wanted is None:
                return html.Div("No such deploy.", className="error")
            if wanted is not None:
                deploy = deploy_store.get_deploy(conn, viewer.key_id, wanted)
        if deploy is None:
            return html.Div(
                [
                    html.H3("No deploys yet"),
                    html.P(
                        "Record one with POST /api/deploys (version, time, description, "
                        "hostname), from your deploy script or CI; it shows as a marker "
                        "on the overview's activity chart and its release comparison here."
                    ),
                ],
                className="notice panel wide",
            )
        minutes = minutes if minutes in dict(WINDOWS) else comparison.DEFAULT_MINUTES
        return comparison_table(comparison.compare(viewer.key_id, deploy, minutes, utcnow()))
