"""The uptime page: each monitor's uptime share, a strip of recent checks, response times."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html

from dash_app import figures
from dash_app.pages.common import graph, page_path, stat
from dash_app.session import viewer_for
from server.db import get_engine
from server.monitors.uptime import monitor_list, recent_checks, uptime_shares


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id="mon-tick", interval=60_000),
            dcc.Loading(html.Div(id="mon-list"), type="dot"),
        ],
        className="monitors",
    )


def _card(monitor, shares, checks) -> html.Section:
    stats = []
    for window in ("24h", "7d", "30d"):
        row = shares[(shares["monitor_id"] == monitor.id) & (shares["window"] == window)]
        value = f"{row['uptime'].iloc[0]:.2f}%" if len(row) else "–"
        note = f"{int(row['checks'].iloc[0])} checks" if len(row) else "no checks"
        stats.append(stat(f"Uptime {window}", value, note))
    return html.Section(
        [
            html.Div(
                [html.H3(f"{monitor.method} {monitor.url}"), html.Span(className="spacer")],
                className="panel-head",
            ),
            html.Div(stats, className="stats"),
            html.Div("Recent checks", className="stat-label"),
            graph(f"mon-strip-{monitor.id}", figure=figures.monitor_strip(checks)),
            html.Div("Response time", className="stat-label"),
            graph(f"mon-rt-{monitor.id}", figure=figures.monitor_response_times(checks)),
        ],
        className="panel wide monitor",
    )


def register(app) -> None:
    @app.callback(
        Output("mon-list", "children"),
        Input("mon-tick", "n_intervals"),
        State("url", "pathname"),
    )
    def show_monitors(_tick, pathname):
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
            # A share link never shows monitors.
            key_id = None if viewer.kind == "share" else viewer.key_id
            if key_id is None:
                return html.Div("Sign in first.", className="notice")
            found = monitor_list(conn, key_id)
            if found.empty:
                return html.Div(
                    [
                        html.H3("No monitors yet"),
                        html.P(
                            "Add one with POST /api/monitors (see the API docs at /api/docs); "
                            "its checks show up here."
                        ),
                    ],
                    className="notice panel wide",
                )
            shares = uptime_shares(conn, list(found["id"]))
            cards = [
                _card(monitor, shares, recent_checks(conn, monitor.id))
                for monitor in found.itertuples()
            ]
        return cards
