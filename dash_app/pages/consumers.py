"""The consumers page: requests, error rate, p95, last request and top endpoints per named
consumer and per consumer group, under the overview's filters; a click opens the overview
filtered by that consumer or group."""

from __future__ import annotations

from dash import Input, Output, State, dcc, get_relative_path, html, no_update

from dash_app.errors_data import consumer_tables
from dash_app.pages.common import fixed_note, number, panel
from dash_app.pages.filtered import controls, gone, register_sync, scope

PREFIX = "co"


def layout(page_path: str) -> html.Div:
    return html.Div(
        [
            *controls(PREFIX),
            html.Div(id="co-note"),
            html.Div(
                [
                    panel("Consumers", dcc.Loading(html.Div(id="co-consumers")), wide=True),
                    panel("Consumer groups", dcc.Loading(html.Div(id="co-groups")), wide=True),
                ],
                className="grid",
            ),
        ],
        className="consumers",
    )


def _link(text: str, base: str, filters, dim: str, value: str, link_id: str) -> dcc.Link:
    """To the overview with the page's filters and this consumer (or group) clicked."""
    href = get_relative_path(base or "/") + filters.with_click(dim, value).to_query()
    return dcc.Link(text, href=href, id=link_id)


def consumers_table(rows: list[dict], base: str, filters, by: str) -> html.Div:
    if not rows:
        what = "consumer" if by == "consumer" else "consumer group"
        return html.P(
            f"No requests with a {what} in this period. Our client sends one when the app "
            "names its caller (docs/capture.md: consumer).",
            className="notice",
        )
    columns = ["Consumer", "Name", "Group"] if by == "consumer" else ["Group"]
    columns += ["Requests", "Error rate", "p95", "Last seen", "Top endpoints"]
    body = []
    for i, r in enumerate(rows):
        if by == "consumer":
            group = r["group"]
            cells = [
                html.Td(_link(r["id"], base, filters, "consumer", r["id"], f"co-consumer-{i}")),
                html.Td(r["name"] or "–"),
                html.Td(_link(group, base, filters, "consumer_group", group, f"co-in-{i}")
                        if group else "–"),
            ]  # fmt: skip
        else:
            cells = [
                html.Td(_link(r["id"], base, filters, "consumer_group", r["id"], f"co-group-{i}"))
            ]
        rate = r["error_rate"]
        cells += [
            html.Td(number(r["requests"]), className="num"),
            html.Td(number(rate, 1, "%"), className="num bad" if rate >= 5 else "num"),
            html.Td(number(r["p95"], 0, " ms"), className="num"),
            html.Td(r["last_seen"], className="nowrap"),
            html.Td(", ".join(r["top_endpoints"]), className="muted"),
        ]
        body.append(html.Tr(cells))
    numbers = ("Requests", "Error rate", "p95")
    head = html.Thead(html.Tr([html.Th(c, className="num" * (c in numbers)) for c in columns]))
    table = html.Table([head, html.Tbody(body)], className="data-table", id=f"co-table-{by}")
    total = rows[0]["total"]
    if total <= len(rows):
        return table
    what = "consumers" if by == "consumer" else "consumer groups"
    note = html.P(
        f"The {len(rows)} busiest of {number(total)} {what}; a consumer group or any other "
        "filter narrows the list, and /api/consumers?limit= returns more.",
        className="muted",
        id=f"co-more-{by}",
    )
    return html.Div([note, table])


def register(app) -> None:
    register_sync(app, PREFIX)

    @app.callback(
        Output("co-note", "children"),
        Output("co-consumers", "children"),
        Output("co-groups", "children"),
        Input("co-query", "data"),
        State("url", "pathname"),
    )
    def show(query, pathname):
        if query is None:
            return (no_update,) * 3
        viewer, filters, _own = scope(query, pathname)
        if viewer.key_id is None:
            return gone(viewer, "co-gone"), [], []
        found = consumer_tables(viewer.key_id, filters)
        return (
            fixed_note(viewer, "co-fixed"),
            consumers_table(found["consumer"], viewer.base, filters, "consumer"),
            consumers_table(found["consumer_group"], viewer.base, filters, "consumer_group"),
        )
