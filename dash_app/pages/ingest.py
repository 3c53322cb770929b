"""The ingest health page: the key's last batch and clients (with their clocks' skew), rows
accepted and refused per day for 14 days with the reasons, what clients reported dropped,
the newest refused rows (masked), warnings in plain words; for a key with nothing yet,
what to check and the snippet for its framework."""

from __future__ import annotations

import json

from dash import Input, Output, State, dcc, html

from dash_app import figures
from dash_app.pages.common import graph, page_path, stat
from dash_app.session import viewer_for
from server.db import get_engine, utcnow
from server.ingest_health.status import health

SERVER = "https://analytics.example.com"
SNIPPETS = {
    "FastAPI": (
        "from api_analytics.fastapi import Analytics, Config\n\n"
        'config = Config()\nconfig.server_url = "{server}"\n'
        'app.add_middleware(Analytics, api_key="<API-KEY>", config=config)'
    ),
    "Flask": (
        "from api_analytics.flask import add_middleware, Config\n\n"
        'config = Config()\nconfig.server_url = "{server}"\n'
        'add_middleware(app, "<API-KEY>", config)'
    ),
    "Django": (
        "# settings.py\nfrom api_analytics.django import Config\n\n"
        'ANALYTICS_API_KEY = "<API-KEY>"\nANALYTICS_CONFIG = Config()\n'
        'ANALYTICS_CONFIG.server_url = "{server}"\n'
        'MIDDLEWARE = ["api_analytics.django.Analytics", ...]  # first'
    ),
    "Starlette": (
        "from starlette.middleware import Middleware\n"
        "from api_analytics.starlette import Analytics, Config\n\n"
        'config = Config()\nconfig.server_url = "{server}"\n'
        'middleware = [Middleware(Analytics, api_key="<API-KEY>", config=config)]'
    ),
    "Litestar": (
        "from api_analytics.litestar import Analytics, Config\n\n"
        'config = Config()\nconfig.server_url = "{server}"\n'
        'app = Litestar(route_handlers=[...], plugins=[Analytics("<API-KEY>", config)])'
    ),
    "aiohttp": (
        "from api_analytics.aiohttp import add_middleware, Config\n\n"
        'config = Config()\nconfig.server_url = "{server}"\n'
        'add_middleware(app, "<API-KEY>", config)'
    ),
}


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id="ih-tick", interval=10_000),
            dcc.Loading(html.Div(id="ih-body"), type="dot"),
        ],
        className="ingest-health",
    )


def nothing_yet(server: str) -> html.Section:
    return html.Section(
        [
            html.H3("Nothing has arrived for this key yet"),
            html.P("Check, in order:"),
            html.Ol([html.Li(c) for c in _checks()]),
            html.P("The middleware, for your framework (with this key in place of <API-KEY>):"),
            dcc.Tabs(
                [
                    dcc.Tab(
                        html.Pre(code.format(server=server), className="snippet"),
                        label=name,
                        value=name,
                    )
                    for name, code in SNIPPETS.items()
                ],
                value="FastAPI",
                id="ih-snippets",
            ),
        ],
        className="notice panel wide",
        id="ih-nothing",
    )


def _checks() -> list[str]:
    from server.ingest_health.status import CHECKS

    return CHECKS


def _reasons_table(days: list[dict]) -> html.Div:
    totals: dict[str, int] = {}
    for day in days:
        for reason, n in day["reasons"].items():
            totals[reason] = totals.get(reason, 0) + n
    if not totals:
        return html.P("No row refused in 14 days.", className="muted")
    rows = [html.Tr([html.Td(r), html.Td(f"{n:,}")]) for r, n in
            sorted(totals.items(), key=lambda kv: -kv[1])]  # fmt: skip
    return html.Table(
        [html.Thead(html.Tr([html.Th("Refused field"), html.Th("Rows, 14 days")])),
         html.Tbody(rows)],
        className="data-table", id="ih-reasons",
    )  # fmt: skip


def _refused_table(refused: list[dict]) -> html.Div:
    if not refused:
        return html.P("No refused rows kept.", className="muted")
    rows = [
        html.Tr(
            [
                html.Td(f"{r['at']:%Y-%m-%d %H:%M:%S}"),
                html.Td(r["framework"] or "–"),
                html.Td(str(r["index"])),
                html.Td(r["reason"]),
                html.Td(html.Code(json.dumps(r["row"], ensure_ascii=False)[:300])),
            ]
        )  # fmt: skip
        for r in refused
    ]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in ("When", "Framework", "Index", "Reason",
                                                   "Row (masked)")])),
         html.Tbody(rows)],
        className="data-table", id="ih-refused",
    )  # fmt: skip


def _seconds(value: float) -> str:
    return f"{value:+,.3f} s"


def _clients_table(clients: list[dict]) -> html.Table:
    rows = []
    for c in clients:
        skew = c.get("skew")
        clock = (
            [html.Td(_seconds(skew["median_s"])), html.Td(_seconds(skew["largest_s"])),
             html.Td(f"{skew['batches']:,}")]
            if skew else [html.Td("not sent", colSpan=3, className="muted")]
        )  # fmt: skip
        rows.append(html.Tr([
            html.Td(c["framework"] or "–"), html.Td(c["client"] or "–"),
            html.Td(f"{c['last_at']:%Y-%m-%d %H:%M:%S}"), html.Td(f"{c['batches']:,}"), *clock,
        ]))  # fmt: skip
    heads = ("Framework", "Client", "Last batch", "Batches", "Clock skew, median",
             "Largest", "Of batches")  # fmt: skip
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(rows)],
        className="data-table", id="ih-clients",
    )  # fmt: skip


def _drops_table(drops: list[dict]) -> html.Div:
    if not drops:
        return html.P("No client reported dropping anything.", className="muted", id="ih-drops")
    rows = [
        html.Tr(
            [
                html.Td(" · ".join(p for p in (d["framework"], d["client"]) if p) or "–"),
                html.Td(html.Code(d["instance"][:8])),
                html.Td(f"{d['buffer_full']:,}"),
                html.Td(f"{d['refused']:,}"),
                html.Td(f"{d['failed']:,}"),
                html.Td(f"{d['changed_at']:%Y-%m-%d %H:%M:%S}"),
                html.Td(f"{d['last_at']:%Y-%m-%d %H:%M:%S}"),
            ]
        )  # fmt: skip
        for d in drops
    ]
    heads = ("Client", "Process", "Buffer full (records)", "Refused (records)",
             "Failed sends (retried)", "Last rise", "Last report")  # fmt: skip
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(rows)],
        className="data-table", id="ih-drops",
    )  # fmt: skip


def body(found: dict, server: str) -> list:
    last = found["last_batch"]
    if last is None:
        return [nothing_yet(server)]
    days = found["days"]
    accepted = sum(d["accepted"] for d in days)
    refused = sum(d["refused"] for d in days)
    client = " · ".join(p for p in (last["framework"], last["client"]) if p) or "unnamed client"
    stats = [
        stat("Last batch", f"{last['at']:%Y-%m-%d %H:%M:%S} UTC", client, stat_id="ih-last"),
        stat("Accepted, 14 days", f"{accepted:,}"),
        stat("Refused, 14 days", f"{refused:,}"),
        stat("Clients", f"{len(found['clients']):,}"),
    ]
    warnings = found.get("warnings") or []
    shown = []
    if warnings:
        shown.append(html.Section(
            [html.H3("Worth a look"), html.Ul([html.Li(w) for w in warnings])],
            className="notice panel wide", id="ih-warnings",
        ))  # fmt: skip
    return [
        *shown,
        html.Section(html.Div(stats, className="stats"), className="panel wide"),
        html.Section(
            [html.H3("Clients and their clocks"), _clients_table(found["clients"])],
            className="panel wide",
        ),  # fmt: skip
        html.Section(
            [html.H3("Rows per day"), graph("ih-days", figure=figures.ingest_days(days))],
            className="panel wide",
        ),
        html.Section(
            [html.H3("Refusals by field"), _reasons_table(days)], className="panel wide"
        ),  # fmt: skip
        html.Section(
            [html.H3("Dropped by clients"), _drops_table(found.get("client_drops") or [])],
            className="panel wide",
        ),  # fmt: skip
        html.Section(
            [html.H3("Newest refused rows"), _refused_table(found["refused_rows"])],
            className="panel wide",
        ),  # fmt: skip
    ]


def register(app) -> None:
    @app.callback(
        Output("ih-body", "children"),
        Input("ih-tick", "n_intervals"),
        State("url", "pathname"),
    )
    def show_health(_tick, pathname):
        from flask import request

        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
        if viewer.kind != "key" or viewer.key_id is None:
            return html.Div("Sign in first.", className="notice")
        return body(health(viewer.key_id, utcnow()), request.host_url.rstrip("/") or SERVER)
