"""The overview: every panel for a period, click-to-filter chips, filters kept in the URL."""

from __future__ import annotations

import logging
from dataclasses import replace

from dash import ALL, Input, Output, State, ctx, dcc, get_relative_path, html, no_update

from dash_app import figures
from dash_app.aggregations import STATUS_CLASSES, endpoint_table
from dash_app.clicks import CLICK_GRAPHS, apply_trigger
from dash_app.countries import name_of
from dash_app.pages.common import graph, number, page_path, panel, stat, table
from dash_app.panels import refresh
from dash_app.session import Viewer, share_problem_text, viewer_for
from server.db import get_engine
from server.stats.filters import DIM_LABELS, PERIODS, Filters

log = logging.getLogger(__name__)

FIGURE_OUTPUTS = {
    "ov-activity": "activity",
    "ov-histogram": "histogram",
    "ov-status": "status_codes",
    "ov-versions": "versions",
    "ov-map": "map",
    "ov-countries": "countries",
    "ov-browsers": "browsers",
    "ov-os": "systems",
    "ov-devices": "devices",
    "ov-hours": "hours",
    "ov-weekdays": "weekdays",
}
TOGGLE_OPTIONS = [
    {"label": "Exclude 404s", "value": "no404"},
    {"label": "Exclude bots", "value": "nobots"},
    {"label": "Ignore URL parameters", "value": "ignore_params"},
    {"label": "Group ids into templates", "value": "templates"},
]


def layout(page_path: str) -> html.Div:
    """The overview page; controls start from the defaults and the URL sync fills them in."""
    defaults = Filters()
    controls = html.Div(
        [
            dcc.RadioItems(
                id="ov-period",
                options=[{"label": label, "value": key} for key, (label, _d) in PERIODS.items()],
                value=defaults.period,
                className="periods",
                inline=True,
            ),
            dcc.Dropdown(
                id="ov-hostname",
                placeholder="All hostnames",
                clearable=True,
                className="hostname",
            ),
            dcc.Checklist(
                id="ov-toggles",
                options=TOGGLE_OPTIONS,
                value=defaults.toggles,
                inline=True,
                className="toggles",
            ),
            dcc.Input(
                id="ov-hidden",
                type="text",
                debounce=True,
                placeholder="Hide endpoints: /admin/*, *.php",
                className="hidden-input",
            ),
            html.A("Export CSV", id="ov-export", href="", className="button", download=""),
        ],
        className="controls",
    )
    return html.Div(
        [
            dcc.Location(id="ov-url", refresh=False),
            dcc.Store(id="ov-filters"),
            dcc.Store(id="ov-endpoint-rows"),
            controls,
            html.Div(id="ov-chips", className="chips"),
            html.Div(id="ov-empty"),
            dcc.Loading(html.Div(id="ov-summary", className="stats"), type="dot"),
            html.Div(
                [
                    panel("Activity", graph("ov-activity"), wide=True),
                    panel("Response times", graph("ov-histogram")),
                    panel("Status codes", graph("ov-status")),
                    panel("API versions", graph("ov-versions")),
                    panel(
                        "Endpoints",
                        dcc.Tabs(
                            id="ov-endpoint-tab",
                            value="all",
                            children=[dcc.Tab(label="All", value="all")]
                            + [dcc.Tab(label=c, value=c) for c in STATUS_CLASSES],
                            className="tabs",
                        ),
                        table(
                            "ov-endpoints",
                            [
                                ("endpoint", "Endpoint"),
                                ("n", "Requests"),
                                ("error_rate", "Errors %"),
                                ("mean_rt", "Mean ms"),
                            ],
                            page_size=10,
                        ),
                        wide=True,
                    ),
                    panel("Location", graph("ov-map"), span=2),
                    panel("Top countries", graph("ov-countries")),
                    panel("Clients", graph("ov-browsers")),
                    panel("Operating systems", graph("ov-os")),
                    panel("Devices", graph("ov-devices")),
                    panel("Hour of day (UTC)", graph("ov-hours"), span=2),
                    panel("Day of week", graph("ov-weekdays")),
                    panel(
                        "Top users",
                        table(
                            "ov-users",
                            [
                                ("user", "User (IP or id)"),
                                ("requests", "Requests"),
                                ("last_seen", "Last seen"),
                                ("location", "Country"),
                            ],
                        ),
                        wide=True,
                    ),
                ],
                className="grid",
            ),
        ],
        className="overview",
    )


def _chips(filters: Filters) -> list:
    chips = []
    for dim, value in filters.clicks:
        shown = value or "Unknown"
        if dim == "location":
            shown = name_of(value)
        chips.append(
            html.Button(
                [f"{DIM_LABELS[dim]}: {shown}", html.Span(" ×", className="chip-x")],
                id={"type": "ov-chip", "dim": dim},
                className="chip",
                title="Remove this filter",
            )
        )
    return chips


def register(app) -> None:
    graph_ids = list(CLICK_GRAPHS)

    @app.callback(
        Output("ov-url", "search"),
        Output("ov-filters", "data"),
        Output("ov-period", "value"),
        Output("ov-hostname", "value"),
        Output("ov-toggles", "value"),
        Output("ov-hidden", "value"),
        Output("ov-chips", "children"),
        Output("ov-endpoints", "active_cell"),
        Output("ov-users", "active_cell"),
        *[Output(g, "clickData") for g in graph_ids],
        Input("ov-url", "search"),
        Input("ov-period", "value"),
        Input("ov-hostname", "value"),
        Input("ov-toggles", "value"),
        Input("ov-hidden", "value"),
        Input("ov-endpoints", "active_cell"),
        Input("ov-users", "active_cell"),
        Input({"type": "ov-chip", "dim": ALL}, "n_clicks"),
        *[Input(g, "clickData") for g in graph_ids],
        State("ov-endpoints", "derived_viewport_data"),
        State("ov-users", "derived_viewport_data"),
    )
    def sync_filters(search, period, hostname, toggles, hidden, endpoint_cell, user_cell, *rest):
        """The URL is the source of truth: controls and clicks rewrite it, reloads read it."""
        chip_clicks = rest[0]
        clicks = dict(zip(graph_ids, rest[1 : 1 + len(graph_ids)], strict=True))
        endpoint_rows, user_rows = rest[-2], rest[-1]
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and not any(chip_clicks):
            trigger = None  # chips re-rendered, nobody clicked
        current = Filters.from_query(search)
        filters = apply_trigger(
            current,
            trigger,
            {
                "period": period,
                "hostname": hostname,
                "toggles": toggles,
                "hidden": hidden,
                "clicks": clicks,
                "endpoint_cell": endpoint_cell,
                "endpoint_rows": endpoint_rows,
                "user_cell": user_cell,
                "user_rows": user_rows,
            },
        )
        query = filters.to_query()
        return (
            query if query != (search or "") else no_update,
            query,
            filters.period,
            filters.hostname,
            filters.toggles,
            ", ".join(filters.hidden),
            _chips(filters),
            None,
            None,
            *[None] * len(graph_ids),
        )

    @app.callback(
        Output("ov-summary", "children"),
        Output("ov-empty", "children"),
        *[Output(g, "figure") for g in FIGURE_OUTPUTS],
        Output("ov-endpoint-rows", "data"),
        Output("ov-users", "data"),
        Output("ov-hostname", "options"),
        Output("ov-export", "href"),
        Input("ov-filters", "data"),
        State("url", "pathname"),
    )
    def update_panels(query, pathname):
        """One full refresh: every panel from the same filters."""
        if query is None:
            return (no_update,) * (len(FIGURE_OUTPUTS) + 6)
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
        # A share link's restrictions ride along every question, whatever the URL says.
        filters = replace(Filters.from_query(query), fixed=viewer.fixed)
        key_id = viewer.key_id
        if key_id is None:
            message = html.Div(_no_data_reason(viewer), className="notice", id="ov-gone")
            empty = figures.empty_figure("Not signed in")
            return (
                [],
                message,
                *[empty] * len(FIGURE_OUTPUTS),
                [],
                [],
                [],
                "",
            )
        data, out = refresh(key_id, filters)
        empty_note = None
        if data.empty:
            period = PERIODS[filters.period][0].lower()
            empty_note = html.Div(
                f"No requests in the last {period} with these filters.", className="notice"
            )
        export = _export_href(filters, viewer)
        endpoint_rows = data.endpoints.to_dict("records")
        hosts = (
            [viewer.share.hostname] if viewer.share and viewer.share.hostname else data.hostnames
        )
        return (
            _summary(data),
            [*_fixed_note(viewer), empty_note],
            *[out[name] for name in FIGURE_OUTPUTS.values()],
            endpoint_rows,
            out["top_users"],
            [{"label": h, "value": h} for h in hosts],
            export,
        )

    @app.callback(
        Output("ov-endpoints", "data"),
        Output("ov-endpoints", "page_current"),
        Input("ov-endpoint-rows", "data"),
        Input("ov-endpoint-tab", "value"),
    )
    def endpoint_tab(rows, tab):
        import pandas as pd

        columns = ["method", "endpoint", "status_class", "n", "rt_sum"]
        frame = pd.DataFrame(rows or [], columns=columns)
        shaped = endpoint_table(frame, None if tab == "all" else tab)
        shaped["error_rate"] = shaped["error_rate"].astype(float).round(1)
        shaped["mean_rt"] = shaped["mean_rt"].astype(float).round(0)
        return shaped.to_dict("records"), 0


def _export_href(filters: Filters, viewer: Viewer) -> str:
    query = filters.to_query()
    if viewer.kind == "share":
        return get_relative_path(f"{viewer.base}/export.csv") + query
    if viewer.kind == "demo":
        query = (query + "&" if query else "?") + "demo=1"
    return get_relative_path("/export.csv") + query


def _no_data_reason(viewer: Viewer) -> str:
    if viewer.kind == "share":
        return share_problem_text(viewer.share)[1]
    return "Sign in again to see this key's data."


def _fixed_note(viewer: Viewer) -> list:
    """A share link's fixed restrictions, said once above the numbers."""
    if viewer.share is None:
        return []
    from dash_app.pages.settings import restrictions

    share = {"hostname": viewer.share.hostname, "filters": viewer.share.filters}
    text = f"Shared view, read-only. Shows: {restrictions(share)}."
    return [html.Div(text, className="notice fixed-note", id="ov-fixed")]


def _summary(data) -> list:
    s = data.summary
    change = s["change"]
    if change is None:
        note = "no earlier data" if data.window.since is not None else "all time"
    else:
        note = f"{change:+.1f}% vs previous period"
    pct = data.percentiles
    return [
        stat("Requests", number(s["requests"]), note, stat_id="ov-requests"),
        stat("Success rate", number(s["success_rate"], 1, "%"), "2xx and 3xx", "ov-success"),
        stat("Users", number(data.users), "distinct IPs or user ids", stat_id="ov-users-count"),
        stat("Mean response", number(s["mean_rt"], 0, " ms"), stat_id="ov-mean"),
        stat(
            "Percentiles",
            " · ".join(f"p{p} {number(v)}" for p, v in pct.items()),
            "ms, exact",
            stat_id="ov-percentiles",
        ),
    ]
