"""The controls of the pages that read the overview's filters from the URL (errors, one
error group, consumers): the period, removable chips and a page's own choices, kept in
the query string like the overview's, so a link or a reload shows the same view."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from dash import ALL, Input, Output, ctx, dcc, html, no_update

from dash_app.pages.common import chips, no_data_reason, period_control, viewer_at
from server.stats.filters import PERIODS, Filters


@dataclass(frozen=True)
class Choice:
    """A page's own URL parameter and its allowed values; the first is the default (and
    is left out of the URL)."""

    name: str
    values: tuple[str, ...]

    def pick(self, value) -> str:
        return value if isinstance(value, str) and value in self.values else self.values[0]


def read(query, choices=()) -> tuple[Filters, dict]:
    """The filters and the page's choices of a query string; anything malformed is the
    default, as Filters.from_query does."""
    text = query if isinstance(query, str) else ""
    args = dict(parse_qsl(text.lstrip("?")))
    return Filters.from_query(text), {c.name: c.pick(args.get(c.name)) for c in choices}


def write(filters: Filters, own: dict, choices=()) -> str:
    query = filters.to_query()
    extra = [(c.name, own[c.name]) for c in choices if own.get(c.name, c.values[0]) != c.values[0]]
    if not extra:
        return query
    return (query + "&" if query else "?") + urlencode(extra)


def scope(query, pathname, choices=()):
    """(viewer, filters, choices) of a page's callback: whose data, under the URL's filters
    and, for a share link, its restrictions, whatever the URL says."""
    viewer = viewer_at(pathname)
    filters, own = read(query, choices)
    return viewer, replace(filters, fixed=viewer.fixed), own


def gone(viewer, note_id: str) -> html.Div:
    """Why a page has nothing to show (signed out, a dead share link)."""
    return html.Div(no_data_reason(viewer), className="notice", id=note_id)


def controls(prefix: str, *extra) -> list:
    """The page's URL, its query store, the period and `extra` controls, and the chips."""
    return [
        dcc.Location(id=f"{prefix}-url", refresh=False),
        dcc.Store(id=f"{prefix}-query"),
        html.Div([period_control(f"{prefix}-period"), *extra], className="controls"),
        html.Div(id=f"{prefix}-chips", className="chips"),
    ]


def changed(trigger, prefix: str, filters: Filters, own: dict, values: dict, choices):
    """The filters and choices after the control `trigger` changed (forged values of
    the wrong type change nothing)."""
    if trigger == f"{prefix}-period" and isinstance(values["period"], str):
        if values["period"] in PERIODS:
            filters = replace(filters, period=values["period"])
    elif isinstance(trigger, dict) and trigger.get("type") == f"{prefix}-chip":
        clicks = values["chips"]
        # Chips drawn afresh fire with no clicks: only a real click removes one.
        if isinstance(clicks, list) and any(clicks) and isinstance(trigger.get("dim"), str):
            filters = filters.without_click(trigger["dim"])
    for choice in choices:
        if trigger == f"{prefix}-{choice.name}":
            own = {**own, choice.name: choice.pick(values[choice.name])}
    return filters, own


def register_sync(app, prefix: str, choices=()) -> None:
    """The URL is the source of truth: controls rewrite it, loads and reloads read it."""
    names = [c.name for c in choices]

    @app.callback(
        Output(f"{prefix}-url", "search"),
        Output(f"{prefix}-query", "data"),
        Output(f"{prefix}-period", "value"),
        *[Output(f"{prefix}-{n}", "value") for n in names],
        Output(f"{prefix}-chips", "children"),
        Input(f"{prefix}-url", "search"),
        Input(f"{prefix}-period", "value"),
        *[Input(f"{prefix}-{n}", "value") for n in names],
        Input({"type": f"{prefix}-chip", "dim": ALL}, "n_clicks"),
    )
    def sync(search, period, *rest):
        values = {"period": period, "chips": rest[-1], **dict(zip(names, rest[:-1], strict=True))}
        filters, own = read(search, choices)
        filters, own = changed(ctx.triggered_id, prefix, filters, own, values, choices)
        query = write(filters, own, choices)
        return (
            query if query != (search or "") else no_update,
            query,
            filters.period,
            *[own[n] for n in names],
            chips(filters, f"{prefix}-chip"),
        )
