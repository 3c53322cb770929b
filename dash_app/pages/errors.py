"""The errors page: error groups under the overview's filters, by state, sortable, each with
its trend; and validation errors per endpoint and field."""

from __future__ import annotations

import logging

from dash import Input, Output, State, dcc, html, no_update

from dash_app.error_views import SORT_LABELS, STATE_LABELS, groups_table, validation_table
from dash_app.errors_data import SORTS, STATES, group_list, validation_rows
from dash_app.pages.common import fixed_note, number, panel, stat
from dash_app.pages.filtered import Choice, controls, gone, register_sync, scope

log = logging.getLogger(__name__)
PREFIX = "er"
CHOICES = (Choice("state", (*STATES, "all")), Choice("sort", SORTS))


def layout(page_path: str) -> html.Div:
    state = dcc.RadioItems(
        id="er-state",
        options=[{"label": STATE_LABELS.get(s, "All"), "value": s} for s in CHOICES[0].values],
        value=CHOICES[0].values[0],
        inline=True,
        className="periods",
    )
    sort = dcc.Dropdown(
        id="er-sort",
        options=[
            {"label": f"Sort by {label.lower()}", "value": k} for k, label in SORT_LABELS.items()
        ],
        value=SORTS[0],
        clearable=False,
        searchable=False,
        className="small-dropdown sort",
    )
    return html.Div(
        [
            *controls(PREFIX, html.Span("State", className="control-label"), state, sort),
            html.Div(id="er-note"),
            dcc.Loading(html.Div(id="er-summary", className="stats"), type="dot"),
            html.Div(
                [
                    panel("Error groups", html.Div(id="er-groups"), wide=True),
                    html.Section(
                        [
                            html.Div(html.H3("Validation errors"), className="panel-head"),
                            html.P(
                                "Requests refused for an invalid field (422s), per endpoint and "
                                "field: what callers get wrong.",
                                className="muted",
                            ),
                            dcc.Loading(html.Div(id="er-validation"), type="dot"),
                        ],
                        className="panel wide",
                        id="validation",
                    ),
                ],
                className="grid",
            ),
        ],
        className="errors",
    )


def register(app) -> None:
    register_sync(app, PREFIX, CHOICES)

    @app.callback(
        Output("er-summary", "children"),
        Output("er-note", "children"),
        Output("er-groups", "children"),
        Output("er-validation", "children"),
        Input("er-query", "data"),
        State("url", "pathname"),
    )
    def show(query, pathname):
        if query is None:
            return (no_update,) * 4
        viewer, filters, own = scope(query, pathname, CHOICES)
        if viewer.key_id is None:
            return [], gone(viewer, "er-gone"), [], []
        listing = group_list(viewer.key_id, filters, own["state"], own["sort"])
        invalid = validation_rows(viewer.key_id, filters)
        state = own["state"]
        summary = [
            stat(
                "Error groups",
                number(listing.total),
                "all states" if state == "all" else STATE_LABELS[state].lower(),
                "er-count",
            ),
            stat("Occurrences", number(listing.occurrences), "of those groups", "er-occurrences"),
            stat(
                "Validation errors",
                number(sum(r["n"] for r in invalid)),
                "fields refused",
                "er-invalid",
            ),
        ]
        return (
            summary,
            fixed_note(viewer, "er-fixed"),
            groups_table(listing, viewer.base, filters.to_query(), own["sort"]),
            validation_table(invalid),
        )

    # A link to #validation (the overview's 422s) lands on the section once it is drawn.
    app.clientside_callback(
        """function (children) {
            if (window.location.hash === "#validation") {
                // After this render is painted, or there is nothing below to scroll to yet.
                window.requestAnimationFrame(() => {
                    const section = document.getElementById("validation");
                    if (section) { section.scrollIntoView({block: "start"}); }
                });
            }
            return window.dash_clientside.no_update;
        }""",
        Output("validation", "className"),
        Input("er-validation", "children"),
        prevent_initial_call=True,
    )
