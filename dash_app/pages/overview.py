"""The overview: every panel for a period, click-to-filter chips, filters kept in the URL."""

from __future__ import annotations

import logging
from dataclasses import replace

from dash import ALL, Input, Output, State, ctx, dcc, get_relative_path, html, no_update

from dash_app import figures
from dash_app.aggregations import STATUS_CLASSES, endpoint_table
from dash_app.clicks import CLICK_GRAPHS, apply_trigger
from dash_app.pages.common import (
    chips,
    fixed_note,
    graph,
    no_data_reason,
    number,
    period_control,
    stat,
    table,
    viewer_at,
)
from dash_app.pages.filtered import read
from dash_app.pages.first_request import first_request_note
from dash_app.pages.state import (
    COMPUTING_TEXT,
    STATE_STYLE,
    failure_text,
    kept_while_loading,
    panel,
)
from dash_app.panels import remembered_refresh, status_links
from dash_app.session import Viewer
from server import stats
from server.db import get_engine
from server.deploys import store as deploy_store
from server.ingest_health.status import has_spans
from server.stats import EngineBusy
from server.stats.filters import PERIODS, Filters

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


def layout(page_path: str, search: str | None = None, location: dict | None = None) -> html.Div:
    """The overview page, its controls, chips and filters read from the URL's query
    (`search`, as the router has it). With the whole `location` (the router's URL) the
    page's own Location starts equal to the browser's, so nothing changes on mount and
    the URL sync does not run: the panels' callback leaves as the page arrives instead of
    after the URL sync's round trip (bench/browser.py)."""
    defaults = read(search)[0] if search is not None else Filters()
    whole = location and all(isinstance(v, str) for v in location.values())
    known = location if whole else {}
    controls = html.Div(
        [
            period_control("ov-period", defaults.period),
            dcc.Dropdown(
                id="ov-hostname",
                placeholder="All hostnames",
                clearable=True,
                value=defaults.hostname,
                className="hostname",
            ),
            # OpenTelemetry's service.name and service.version (hidden until a span
            # named one): a choice is the same filter as a click, `service=` in the URL.
            html.Div(
                [
                    dcc.Dropdown(
                        id="ov-service",
                        placeholder="All services",
                        clearable=True,
                        value=defaults.click.get("service"),
                        className="service",
                    ),
                    dcc.Dropdown(
                        id="ov-release",
                        placeholder="All releases",
                        clearable=True,
                        value=defaults.click.get("release"),
                        className="release",
                    ),
                ],  # fmt: skip
                id="ov-services",
                className="menus",
                style={"display": "none"},
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
                value=", ".join(defaults.hidden),
                className="hidden-input",
            ),
            html.A("Export CSV", id="ov-export", href="", className="button", download=""),
        ],
        className="controls",
    )
    return html.Div(
        [
            dcc.Location(id="ov-url", refresh=False, **known),
            dcc.Store(id="ov-filters", data=defaults.to_query()),
            dcc.Store(id="ov-endpoint-rows"),
            controls,
            html.Div(chips(defaults, "ov-chip"), id="ov-chips", className="chips"),
            html.Div(id="ov-computing", role="status", style=STATE_STYLE),
            html.Div(id="ov-problem", role="alert"),
            html.Div(id="ov-empty"),
            kept_while_loading(html.Div(id="ov-summary", className="stats")),
            html.Div(
                [
                    panel("Activity", graph("ov-activity", figures.ACTIVITY_HEIGHT), wide=True),
                    panel("Response times", graph("ov-histogram", figures.HEIGHT)),
                    panel(
                        "Status codes",
                        graph("ov-status", figures.HEIGHT),
                        extra=html.Div(id="ov-status-links", className="panel-links"),
                    ),
                    panel("API versions", graph("ov-versions", figures.HEIGHT)),
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
                    panel("Location", graph("ov-map", figures.MAP_HEIGHT), span=2),
                    panel("Top countries", graph("ov-countries", figures.HEIGHT)),
                    panel("Clients", graph("ov-browsers", figures.HEIGHT)),
                    panel("Operating systems", graph("ov-os", figures.HEIGHT)),
                    panel("Devices", graph("ov-devices", figures.HEIGHT)),
                    panel("Hour of day (UTC)", graph("ov-hours", figures.HEIGHT), span=2),
                    panel("Day of week", graph("ov-weekdays", figures.HEIGHT)),
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
                        span=2,
                    ),
                    panel(
                        "User ID",
                        table("ov-user-ids", [("user_id", "User id"), ("n", "Requests")]),
                    ),
                ],
                className="grid",
            ),
        ],
        className="overview",
    )


def register(app) -> None:
    graph_ids = list(CLICK_GRAPHS)

    @app.callback(
        Output("ov-url", "search"),
        Output("ov-filters", "data"),
        Output("ov-period", "value"),
        Output("ov-hostname", "value"),
        Output("ov-service", "value"),
        Output("ov-release", "value"),
        Output("ov-toggles", "value"),
        Output("ov-hidden", "value"),
        Output("ov-chips", "children"),
        Output("ov-endpoints", "active_cell"),
        Output("ov-users", "active_cell"),
        Output("ov-user-ids", "active_cell"),
        *[Output(g, "clickData") for g in graph_ids],
        Input("ov-url", "search"),
        Input("ov-period", "value"),
        Input("ov-hostname", "value"),
        Input("ov-service", "value"),
        Input("ov-release", "value"),
        Input("ov-toggles", "value"),
        Input("ov-hidden", "value"),
        Input("ov-endpoints", "active_cell"),
        Input("ov-users", "active_cell"),
        Input("ov-user-ids", "active_cell"),
        Input({"type": "ov-chip", "dim": ALL}, "n_clicks"),
        *[Input(g, "clickData") for g in graph_ids],
        State("ov-filters", "data"),
        State("ov-endpoints", "derived_viewport_data"),
        State("ov-users", "derived_viewport_data"),
        State("ov-user-ids", "derived_viewport_data"),
        # The layout holds the URL's filters; a Location the layout could not fill in
        # reports the URL on mount, which runs this.
        prevent_initial_call=True,
    )
    def sync_filters(search, period, hostname, service, release, toggles, hidden,
                     endpoint_cell, user_cell, user_id_cell, *rest):  # fmt: skip
        """The URL is the source of truth: controls and clicks rewrite it, reloads read it."""
        chip_clicks = rest[0]
        clicks = dict(zip(graph_ids, rest[1 : 1 + len(graph_ids)], strict=True))
        stored, endpoint_rows, user_rows, user_id_rows = rest[-4:]
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and not any(chip_clicks):
            trigger = None  # chips re-rendered, nobody clicked
        current = read(search)[0]
        filters = apply_trigger(
            current,
            trigger,
            {
                "period": period,
                "hostname": hostname,
                "service": service,
                "release": release,
                "toggles": toggles,
                "hidden": hidden,
                "clicks": clicks,
                "endpoint_cell": endpoint_cell,
                "endpoint_rows": endpoint_rows,
                "user_cell": user_cell,
                "user_rows": user_rows,
                "user_id_cell": user_id_cell,
                "user_id_rows": user_id_rows,
            },
        )
        query = filters.to_query()
        return (
            query if query != (search or "") else no_update,
            # The layout brought the URL's filters: the panels are computing them already.
            query if query != stored else no_update,
            filters.period,
            filters.hostname,
            filters.click.get("service"),
            filters.click.get("release"),
            filters.toggles,
            ", ".join(filters.hidden),
            chips(filters, "ov-chip"),
            None,
            None,
            None,
            *[None] * len(graph_ids),
        )

    @app.callback(
        Output("ov-summary", "children"),
        Output("ov-problem", "children"),
        Output("ov-empty", "children"),
        *[Output(g, "figure") for g in FIGURE_OUTPUTS],
        Output("ov-endpoint-rows", "data"),
        Output("ov-endpoints", "data"),
        Output("ov-endpoints", "page_current"),
        Output("ov-users", "data"),
        Output("ov-user-ids", "data"),
        Output("ov-status-links", "children"),
        Output("ov-hostname", "options"),
        Output("ov-export", "href"),
        Input("ov-filters", "data"),
        State("url", "pathname"),
        State("ov-endpoint-tab", "value"),
        running=[(Output("ov-computing", "children"), COMPUTING_TEXT, None)],
    )
    def update_panels(query, pathname, tab):
        """One full refresh: every panel from the same filters, the endpoints table's open
        tab included (a callback of its own cost a navigation or click one more round trip
        after this one: bench/browser.py). One that fails leaves the panels as they were
        and says why above them."""
        outputs = len(FIGURE_OUTPUTS) + 11
        if query is None:
            return (no_update,) * outputs
        viewer = viewer_at(pathname)
        # A share link's restrictions ride along every question, whatever the URL says.
        filters = replace(read(query)[0], fixed=viewer.fixed)
        key_id = viewer.key_id
        if key_id is None:
            message = html.Div(no_data_reason(viewer), className="notice", id="ov-gone")
            empty = figures.empty_figure("Not signed in")
            return (
                [], None, message, *[empty] * len(FIGURE_OUTPUTS), [], [], 0, [], [], None, [], ""
            )  # fmt: skip
        try:
            data, out = remembered_refresh(key_id, filters)
        except Exception as exc:
            if not isinstance(exc, EngineBusy):
                log.exception("the overview's panels failed for key %s", key_id)
            problem = html.Div(
                [failure_text(exc), " The numbers below are still those of the view before."],
                className="error",
                id="ov-problem-text",
            )
            return (no_update, problem, *(no_update,) * (outputs - 2))
        deploys = deploys_in(key_id, data.window, filters.hostname) if (
            viewer.kind == "key" and not data.empty) else []  # fmt: skip
        if deploys:
            out["activity"] = figures.deploy_markers(out["activity"], deploys)
        empty_note = None
        if data.empty and viewer.kind == "key" and not data.hostnames:
            # Nothing ever arrived for the key: how to send the first request.
            empty_note = first_request_note()
        elif data.empty:
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
            None,
            [*fixed_note(viewer, "ov-fixed"), empty_note],
            *[out[name] for name in FIGURE_OUTPUTS.values()],
            endpoint_rows,
            endpoint_tab_rows(data.endpoints, tab),
            0,
            out["top_users"],
            out["user_ids"],
            _status_links(data, viewer, filters),
            [{"label": h, "value": h} for h in hosts],
            export,
        )

    @app.callback(
        Output("ov-endpoints", "data", allow_duplicate=True),
        Output("ov-endpoints", "page_current", allow_duplicate=True),
        Input("ov-endpoint-tab", "value"),
        State("ov-endpoint-rows", "data"),
        prevent_initial_call=True,
    )
    def endpoint_tab(tab, rows):
        """Another tab of the rows the last refresh brought: no new question."""
        import pandas as pd

        columns = ["method", "endpoint", "status_class", "n", "rt_sum"]
        # The rows are the page's own store (update_panels filled it); a forged one is
        # read as far as it has the right shape, the rest is left out.
        kept = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        frame = pd.DataFrame(kept, columns=columns)
        for name in ("status_class", "n", "rt_sum"):  # numbers (the class is 1 to 5)
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
        frame = frame.dropna(subset=["status_class"]).fillna({"n": 0, "rt_sum": 0})
        for name in ("method", "endpoint"):
            frame[name] = frame[name].astype(str)
        return endpoint_tab_rows(frame, tab), 0

    @app.callback(
        Output("ov-service", "options"),
        Output("ov-release", "options"),
        Output("ov-services", "style"),
        Input("ov-filters", "data"),
        State("url", "pathname"),
    )
    def service_menus(query, pathname):
        """The services and releases the key's spans named, beside the panels (a callback
        of its own: it never holds up their answer); hidden for a key no OpenTelemetry
        export reached (rows of a JSON batch's optional `service` are filtered by URL only),
        and for a share link (its viewer sees no other service's name)."""
        hidden = ([], [], {"display": "none"})
        viewer = viewer_at(pathname)
        if viewer.kind != "key" or viewer.key_id is None or not isinstance(query, str):
            return hidden
        if not has_spans(viewer.key_id):
            return hidden  # no scan for a key no span reached (0.3-0.4x a 24-hour refresh)
        try:
            pairs = stats.services(viewer.key_id)
        except EngineBusy:
            return no_update, no_update, no_update
        if not pairs:
            return hidden
        chosen = read(query)[0].click.get("service")
        names = sorted({p["service"] for p in pairs})
        shown = [p for p in pairs if chosen is None or p["service"] == chosen]
        releases = list(dict.fromkeys(p["release"] for p in shown if p["release"] is not None))
        return (
            [{"label": n, "value": n} for n in names],
            [{"label": r, "value": r} for r in releases],
            {"display": "flex"},
        )


def endpoint_tab_rows(frame, tab) -> list[dict]:
    """The endpoints table's rows for a tab ('all' or a status class; any other value, as
    a forged callback may send, reads as 'all')."""
    shaped = endpoint_table(frame, tab if tab in STATUS_CLASSES else None)
    shaped["error_rate"] = shaped["error_rate"].astype(float).round(1)
    shaped["mean_rt"] = shaped["mean_rt"].astype(float).round(0)
    return shaped.to_dict("records")


def deploys_in(key_id: int, window, hostname: str | None) -> list[dict]:
    """The key's deploys in the window (to its host, or to every host): the activity
    chart's markers."""
    since = None if window.since is None else window.since * 1_000_000
    with get_engine().connect() as conn:
        return deploy_store.list_deploys(
            conn, key_id, since, window.until * 1_000_000, hostname, limit=200
        )


def _export_href(filters: Filters, viewer: Viewer) -> str:
    query = filters.to_query()
    if viewer.kind == "share":
        return get_relative_path(f"{viewer.base}/export.csv") + query
    if viewer.kind == "demo":
        query = (query + "&" if query else "?") + "demo=1"
    return get_relative_path("/export.csv") + query


def _status_links(data, viewer: Viewer, filters: Filters) -> list:
    """5xx lead to the errors page, 422s to its validation errors, with the same filters."""
    base = get_relative_path(f"{viewer.base}/errors") + filters.to_query()
    return [
        dcc.Link(text, href=base + anchor, id=link_id, className="panel-link")
        for text, anchor, link_id in status_links(data.status_codes)
    ]


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
