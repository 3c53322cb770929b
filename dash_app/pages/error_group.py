"""One error group: its stack trace, state (resolve, ignore, reopen), the status codes and
versions it came with, its trend, the latest occurrences and one occurrence's request and
response, under the overview's filters from the URL."""

from __future__ import annotations

import logging

from dash import ALL, Input, Output, State, ctx, dcc, get_relative_path, html, no_update

from dash_app import figures
from dash_app.clicks import table_row
from dash_app.error_views import exchanges, stack_view, state_badge
from dash_app.errors_data import (
    STATES,
    group_detail,
    occurrence,
    occurrence_rows,
    parse_id,
    set_state,
)
from dash_app.pages.common import (
    fixed_note,
    graph,
    moment,
    number,
    page_path,
    panel,
    table,
    viewer_at,
)
from dash_app.pages.filtered import controls, gone, register_sync, scope
from server.csrf import csrf_ok, csrf_token

log = logging.getLogger(__name__)
PREFIX = "eg"
NOT_FOUND = "No such error group for this key."
REFUSED = "Refused: this page's token is missing or stale (reload the page and try again)."
# The button each state offers, by the state it leads to.
ACTIONS = {"open": "Reopen", "resolved": "Resolve", "ignored": "Ignore"}
TREND_HEIGHT = 170
OCCURRENCE_COLUMNS = [
    ("time", "Time (UTC)"),
    ("method", "Method"),
    ("path", "Path"),
    ("status", "Status"),
    ("consumer", "Consumer"),
    ("user_id", "User id"),
]


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            dcc.Store(id="eg-csrf", data=csrf_token()),
            dcc.Store(id="eg-changed", data=0),
            *controls(PREFIX),
            html.Div(id="eg-msg"),
            dcc.Loading(html.Div(id="eg-head"), type="dot"),
            html.Div(
                [
                    panel("Stack trace", html.Div(id="eg-stack"), span=2),
                    panel(
                        "In this period",
                        html.Div(id="eg-facts"),
                        graph("eg-trend", TREND_HEIGHT),
                    ),
                    panel("Request and response", html.Div(id="eg-capture"), wide=True),
                    panel(
                        "Latest occurrences",
                        html.P(
                            "Click one to see its stack, request and response.", className="muted"
                        ),
                        table("eg-occurrences", OCCURRENCE_COLUMNS, page_size=10),
                        wide=True,
                    ),
                ],
                className="grid",
            ),
        ],
        className="error-group",
    )


def group_id_of(pathname) -> int | None:
    """The id in '.../errors/<id>' (the router only opens such paths)."""
    path = page_path(pathname)
    head, _, tail = path.rpartition("/")
    return parse_id(tail) if head.endswith("errors") else None


def _head(detail: dict, viewer, query: str) -> html.Div:
    back = dcc.Link("← All errors", href=get_relative_path(f"{viewer.base}/errors") + query)
    buttons = []
    # A share link and the demo are read-only; only the key's owner changes a state.
    if viewer.kind == "key":
        buttons = [
            html.Button(
                ACTIONS[state],
                id={"type": "eg-state", "state": state},
                className="button small",
            )
            for state in STATES
            if state != detail["state"]
        ]
    regressed = detail["regressed_at"] is not None and detail["state"] == "open"
    seen = f"First seen {detail['first_seen']} · last seen {detail['last_seen']}"
    if detail["regressions"]:
        seen += f" · came back {detail['regressions']} time(s) after being resolved"
    return html.Div(
        [
            back,
            html.H2(
                [
                    html.Span(detail["type"], id="eg-type"),
                    " ",
                    state_badge(detail["state"], regressed),
                ],
            ),  # fmt: skip
            html.Div(detail["message"], className="group-message", id="eg-message"),
            html.Div(
                [detail["route"], " · ", html.Code(detail["frame"] or "no frame")],
                className="muted",
            ),  # fmt: skip
            html.Div(seen, className="muted small", id="eg-seen"),
            html.Div(buttons, className="state-buttons") if buttons else None,
        ],
        className="panel wide group-head",
    )


def _facts(detail: dict) -> html.Ul:
    period = detail["period"]
    codes = ", ".join(str(s) for s in period["statuses"]) or "–"
    versions = ", ".join(v for v in period["versions"]) or "no version"
    return html.Ul(
        [
            html.Li(f"{number(period['n'])} occurrences", id="eg-count"),
            html.Li(f"{number(period['users'])} users, {number(period['consumers'])} consumers"),
            html.Li(f"Status codes: {codes}", id="eg-statuses"),
            html.Li(f"API versions: {versions}", id="eg-versions"),
        ],
        className="facts",
    )


def _occurrence(found: dict | None, prefix: str = "eg") -> tuple:
    """The stack and the request and response of one occurrence."""
    if found is None:
        nothing = html.P("No occurrence in this period: pick a longer one.", className="notice")
        return nothing, nothing
    stamp = html.Div(
        f"{moment(found['at_us'])} · {found['method']} {found['path']} → {found['status']} · "
        f"{found.get('message') or 'no message'}",
        className="muted small",
        id=f"{prefix}-when",
    )
    return (
        html.Div([stamp, stack_view(found["stack"], f"{prefix}-frames")]),
        exchanges(found, prefix),
    )


def register(app) -> None:
    register_sync(app, PREFIX)

    @app.callback(
        Output("eg-head", "children"),
        Output("eg-facts", "children"),
        Output("eg-trend", "figure"),
        Output("eg-occurrences", "data"),
        Output("eg-occurrences", "active_cell"),
        Output("eg-stack", "children"),
        Output("eg-capture", "children"),
        Input("eg-query", "data"),
        Input("eg-changed", "data"),
        State("url", "pathname"),
    )
    def show(query, _changed, pathname):
        if query is None:
            return (no_update,) * 7
        viewer, filters, _own = scope(query, pathname)
        group_id = group_id_of(pathname)
        empty = figures.empty_figure("No occurrences", height=TREND_HEIGHT)
        if viewer.key_id is None:
            return gone(viewer, "eg-gone"), None, empty, [], None, None, None
        detail = group_id and group_detail(viewer.key_id, group_id, filters)
        if not detail:
            missing = html.Div(NOT_FOUND, className="notice", id="eg-gone")
            return missing, None, empty, [], None, None, None
        occurrences = detail["occurrences"]
        stack, capture = _occurrence(occurrences[0] if occurrences else None)
        return (
            [*fixed_note(viewer, "eg-fixed"), _head(detail, viewer, filters.to_query())],
            _facts(detail),
            figures.trend_bars(detail["trend"], detail["unit"], TREND_HEIGHT),
            occurrence_rows(occurrences),
            None,
            stack,
            capture,
        )

    @app.callback(
        Output("eg-stack", "children", allow_duplicate=True),
        Output("eg-capture", "children", allow_duplicate=True),
        Input("eg-occurrences", "active_cell"),
        State("eg-occurrences", "derived_viewport_data"),
        State("eg-query", "data"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    def pick(cell, rows, query, pathname):
        """One occurrence, fetched again under the viewer's filters: the table's row only
        names it, so a forged row shows nothing the viewer could not see anyway."""
        try:
            row = table_row(cell, rows)
        except (TypeError, AttributeError):
            row = None
        detail_id = parse_id(row.get("detail")) if isinstance(row, dict) else None
        if detail_id is None:
            return no_update, no_update
        viewer, filters, _own = scope(query, pathname)
        group_id = group_id_of(pathname)
        if viewer.key_id is None or group_id is None:
            return no_update, no_update
        only = filters.with_click("error_group", str(group_id))
        found = occurrence(viewer.key_id, group_id, only, detail_id)
        if found is None:
            note = html.P("That occurrence is no longer in this period.", className="notice")
            return note, note
        return _occurrence(found)

    @app.callback(
        Output("eg-msg", "children"),
        Output("eg-changed", "data"),
        Input({"type": "eg-state", "state": ALL}, "n_clicks"),
        State("eg-csrf", "data"),
        State("eg-changed", "data"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    def change_state(_clicks, token, changed, pathname):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
            return no_update, no_update  # the buttons were drawn afresh; none was clicked
        state = trigger.get("state")
        if not isinstance(state, str) or state not in STATES:
            return html.Div(f"Not a state: {str(state)[:40]!r}.", className="error"), no_update
        if not csrf_ok(token):
            return html.Div(REFUSED, className="error"), no_update
        viewer, group_id = viewer_at(pathname), group_id_of(pathname)
        if viewer.kind != "key" or viewer.key_id is None:
            return html.Div("This view is read-only.", className="error"), no_update
        if group_id is None or not set_state(viewer.key_id, group_id, state):
            return html.Div(NOT_FOUND, className="error"), no_update
        log.info("key id=%s set error group id=%s %s", viewer.key_id, group_id, state)
        count = changed if isinstance(changed, int) else 0
        return html.Div(f"Marked {state}.", className="done", id="eg-done"), count + 1
