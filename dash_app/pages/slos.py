"""The SLO page: each SLO's SLI, error budget left and burn rates now, and its budget's
burn-down over the rolling window."""

from __future__ import annotations

from datetime import timedelta

from dash import Input, Output, State, dcc, html

from dash_app import figures
from dash_app.pages.common import graph, page_path, stat
from dash_app.session import viewer_for
from server.db import get_engine, utcnow
from server.deploys import store as deploy_store
from server.slos import status, store


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id="slo-tick", interval=60_000),
            dcc.Loading(html.Div(id="slo-list"), type="dot"),
        ],
        className="slos",
    )


def describe(slo: dict) -> str:
    """What the SLO promises, in one line."""
    if slo["objective"] == "latency":
        what = f"answered within {slo['threshold_ms']} ms"
    else:
        what = "not answered 4xx or 5xx" if slo["include_4xx"] else "not answered 5xx"
    scope = [slo["hostname"] or "", ", ".join(slo["endpoints"])]
    if slo["consumer_group"]:
        scope.append(f"consumer group {slo['consumer_group']}")
    where = "; ".join(s for s in scope if s) or "every request"
    return f"{slo['target']:g} % of requests {what}, over {slo['window_days']} days ({where})"


def _rate(value) -> str:
    return "–" if value is None else f"{value:.1f}×"


def card(slo: dict, state: status.Status, deploys: list[dict] = ()) -> html.Section:
    """One SLO: its numbers, and its budget's burn-down with a line at each deploy in the
    window (`deploys`: the key's, to the SLO's hostname or to every host)."""
    found = state.as_dict()
    sli = "–" if found["sli"] is None else f"{found['sli']:.3f}%"
    left = found["budget_remaining"]
    rates = found["burn_rates"]
    stats = [
        stat("SLI", sli, f"{found['requests']:,} requests, {found['bad']:,} bad"),
        stat("Budget left", f"{left:.1f}%", f"{found['budget']:,.1f} bad requests allowed"),
        stat("Burn 1 h / 5 min", f"{_rate(rates['1h'])} / {_rate(rates['5m'])}", "fast: 14.4×"),
        stat("Burn 6 h / 30 min", f"{_rate(rates['6h'])} / {_rate(rates['30m'])}", "slow: 6×"),
        stat("Burn 3 days", _rate(rates["3d"]), "slow: 1× with 6 h"),
    ]
    return html.Section(
        [
            html.Div(
                [html.H3(slo["name"]), html.Span(describe(slo), className="muted")],
                className="panel-head",
            ),
            html.Div(stats, className="stats"),
            html.Div("Error budget left", className="stat-label"),
            graph(f"slo-burn-{slo['id']}", figure=_burn_down(slo, state, deploys)),
        ],
        className="panel wide slo",
        id=f"slo-{slo['id']}",
    )


def _burn_down(slo: dict, state: status.Status, deploys: list[dict]):
    points = state.burn_down()
    figure = figures.budget_burn_down(points)
    if len(points) < 2:
        return figure
    start = points[0][0]
    shown = [d for d in deploys if d["time"].timestamp() >= start
             and (not slo["hostname"] or d["hostname"] in (None, slo["hostname"]))]  # fmt: skip
    return figures.deploy_markers(figure, shown) if shown else figure


def register(app) -> None:
    @app.callback(
        Output("slo-list", "children"),
        Input("slo-tick", "n_intervals"),
        State("url", "pathname"),
    )
    def show_slos(_tick, pathname):
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
            key_id = None if viewer.kind != "key" else viewer.key_id
            if key_id is None:
                return html.Div("Sign in first.", className="notice")
            found = store.list_slos(conn, key_id)
            now = utcnow()
            since = deploy_store.us(now - timedelta(days=max((s["window_days"] for s in found),
                                                             default=0)))  # fmt: skip
            deploys = deploy_store.list_deploys(conn, key_id, since, limit=200) if found else []
        if not found:
            return html.Div(
                [
                    html.H3("No SLOs yet"),
                    html.P(
                        "Add one with POST /api/slos (see the API docs at /api/docs): an "
                        "availability or latency target over 7, 28 or 30 days. Its error "
                        "budget and burn rates show up here, and its burn-rate alerts "
                        "under Alerts."
                    ),
                ],
                className="notice panel wide",
            )
        states = status.statuses(key_id, found, now)
        return [card(slo, state, deploys) for slo, state in zip(found, states, strict=True)]
