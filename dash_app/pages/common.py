"""Pieces every page uses: cards, panels with loading states, tables, numbers."""

from __future__ import annotations

from dash import dash_table, dcc, get_relative_path, html, strip_relative_path


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


def graph(graph_id: str, **kwargs) -> dcc.Graph:
    return dcc.Graph(id=graph_id, config=graph_config(), **kwargs)


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
    """The dashboard-relative path of a page's pathname ('demo/explorer', '', ...)."""
    return strip_relative_path(pathname or "/") or ""
