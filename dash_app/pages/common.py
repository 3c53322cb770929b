"""Pieces every page uses: cards, panels with loading states, tables, numbers."""

from __future__ import annotations

from dash import dash_table, dcc, get_relative_path, html, strip_relative_path
from dash.exceptions import UnsupportedRelativePath


def graph_config() -> dict:
    # The world map's topojson is served from our assets, not Plotly's CDN (self-hosted).
    return {
        "displayModeBar": False,
        "responsive": True,
        "topojsonURL": get_relative_path("/assets/topojson/"),
    }


def panel(title: str, *children, wide: bool = False, span: int = 1, extra=None) -> html.Section:
    """A titled card whose content shows a spinner while its callback runs."""
    header = [html.H3(title)]
    if extra is not None:
        header.append(extra)
    return html.Section(
        [html.Div(header, className="panel-head"), dcc.Loading(list(children), type="dot")],
        className="panel wide" if wide else f"panel span{span}",
    )


def graph(graph_id: str, height: int | None = None, **kwargs) -> dcc.Graph:
    """A graph; `height` (its figure's) for one whose figure a callback draws later."""
    if height is not None:
        # Without it Dash 4 gives the graph height: 100% of an auto-height card, which is
        # 0: the figure, drawn later, then spills over the cards below it.
        kwargs["style"] = {"height": f"{height}px", **kwargs.get("style", {})}
        # Until then it holds a blank figure, not dcc.Graph's default empty axes, which
        # took Chromium 1.8x as long to draw (11 graphs: 96 against 54 ms) while the page
        # waits for its answer (bench/README.md, issue 34).
        kwargs.setdefault("figure", blank(height))
    return dcc.Graph(id=graph_id, config=graph_config(), **kwargs)


def blank(height: int) -> dict:
    hidden = {"visible": False}
    return {"data": [], "layout": {"height": height, "xaxis": hidden, "yaxis": hidden}}


def table(table_id: str, columns: list[tuple[str, str]], page_size: int = 10, **kwargs):
    return dash_table.DataTable(
        id=table_id,
        columns=[{"name": name, "id": cid} for cid, name in columns],
        data=[],
        page_size=page_size,
        style_as_list_view=True,
        style_cell={
            "fontFamily": "inherit",
            "fontSize": 13,
            "padding": "6px 8px",
            "textAlign": "left",
            "maxWidth": 420,
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },
        style_header={"fontWeight": 600, "backgroundColor": "#f5f7fb"},
        **kwargs,
    )


def number(value, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "–"
    if digits:
        return f"{value:,.{digits}f}{suffix}"
    return f"{round(value):,}{suffix}"


def stat(label: str, value: str, note=None, stat_id: str | None = None) -> html.Div:
    children = [html.Div(label, className="stat-label"), html.Div(value, className="stat-value")]
    if note is not None:
        children.append(html.Div(note, className="stat-note"))
    props = {"id": stat_id} if stat_id else {}
    return html.Div(children, className="stat", **props)


def page_path(pathname: str | None) -> str:
    """The dashboard-relative path of a page's pathname ('demo/explorer', '', ...); a
    forged one outside the dashboard is its front page."""
    if not isinstance(pathname, str):
        return ""
    try:
        return strip_relative_path(pathname) or ""
    except UnsupportedRelativePath:
        return ""


def period_control(control_id: str, value: str | None = None) -> dcc.RadioItems:
    """The period buttons every filtered page shows (the URL sync sets their value)."""
    from server.stats.filters import DEFAULT_PERIOD, PERIODS

    return dcc.RadioItems(
        id=control_id,
        options=[{"label": label, "value": key} for key, (label, _d) in PERIODS.items()],
        value=value or DEFAULT_PERIOD,
        className="periods",
        inline=True,
    )


def chips(filters, chip_type: str) -> list:
    """A removable chip per click filter; `chip_type` is the page's pattern-matching id type."""
    from dash_app.countries import name_of
    from server.stats.filters import DIM_LABELS

    found = []
    for dim, value in filters.clicks:
        shown = name_of(value) if dim == "location" else (value or "Unknown")
        found.append(
            html.Button(
                [f"{DIM_LABELS[dim]}: {shown}", html.Span(" ×", className="chip-x")],
                id={"type": chip_type, "dim": dim},
                className="chip",
                title="Remove this filter",
            )
        )
    return found


def viewer_at(pathname):
    """Whose data the page at `pathname` shows (server.keys via dash_app.session)."""
    from dash_app.session import viewer_for
    from server.db import get_engine

    with get_engine().connect() as conn:
        return viewer_for(conn, page_path(pathname))


def no_data_reason(viewer) -> str:
    from dash_app.session import share_problem_text

    if viewer.kind == "share":
        return share_problem_text(viewer.share)[1]
    if viewer.kind == "demo":
        return "The demo has no data yet: run `flask --app wsgi seed-demo`."
    return "Sign in again to see this key's data."


def fixed_note(viewer, note_id: str) -> list:
    """A share link's fixed restrictions, said once above the numbers."""
    if viewer.share is None:
        return []
    from dash_app.pages.settings import restrictions

    share = {"hostname": viewer.share.hostname, "filters": viewer.share.filters}
    text = f"Shared view, read-only. Shows: {restrictions(share)}."
    return [html.Div(text, className="notice fixed-note", id=note_id)]


def moment(micros) -> str:
    """Epoch microseconds as the dashboard's UTC stamp ('–' for none)."""
    from datetime import UTC, datetime

    if micros is None or micros != micros:  # None or NaN
        return "–"
    return datetime.fromtimestamp(int(micros) / 1e6, UTC).strftime("%Y-%m-%d %H:%M UTC")
