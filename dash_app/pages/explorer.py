"""The request explorer: raw rows newest first, filtered and paged 50 at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from dash import Input, Output, State, ctx, dcc, html, no_update

from dash_app.clicks import table_row
from dash_app.error_views import request_details
from dash_app.errors_data import detail_text, parse_id
from dash_app.pages.common import page_path, table, viewer_at
from dash_app.session import share_problem_text, viewer_for
from server.db import get_engine
from server.stats import EXPLORER_COLUMNS, ExplorerFilters, explorer_page, hostnames
from server.stats.errors import capture

PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # a forged page number past it is the first page
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
LABELS = {
    "created_at": "Time (UTC)",
    "method": "Method",
    "hostname": "Hostname",
    "path": "Path",
    "status": "Status",
    "response_time": "ms",
    "location": "Country",
    "ip_address": "IP",
    "user_id": "User id",
    "browser": "Client",
    "os": "OS",
    "device": "Device",
    "consumer": "Consumer",
}
FILTER_INPUTS = (
    ("ex-dates", "start_date"),
    ("ex-dates", "end_date"),
    ("ex-status", "value"),
    ("ex-method", "value"),
    ("ex-hostname", "value"),
    ("ex-path", "value"),
    ("ex-rt-min", "value"),
    ("ex-rt-max", "value"),
)


def layout(page_path: str) -> html.Div:
    controls = html.Div(
        [
            _sized(
                dcc.DatePickerRange(
                    id="ex-dates",
                    display_format="YYYY-MM-DD",
                    clearable=True,
                    start_date_placeholder_text="From",
                    end_date_placeholder_text="To",
                ),
                300,
            ),
            _sized(
                dcc.Dropdown(
                    id="ex-status",
                    options=[{"label": c, "value": c} for c in ("1xx", "2xx", "3xx", "4xx", "5xx")],
                    placeholder="Status",
                ),
                120,
            ),
            _sized(
                dcc.Dropdown(
                    id="ex-method",
                    options=[{"label": m, "value": m} for m in METHODS],
                    placeholder="Method",
                ),
                130,
            ),
            _sized(dcc.Dropdown(id="ex-hostname", placeholder="Hostname"), 200),
            _sized(
                dcc.Input(id="ex-path", type="text", placeholder="Path contains", debounce=True),
                200,
            ),
            _sized(
                dcc.Input(
                    id="ex-rt-min", type="number", min=0, placeholder="Min ms", debounce=True
                ),
                130,
            ),
            _sized(
                dcc.Input(
                    id="ex-rt-max", type="number", min=0, placeholder="Max ms", debounce=True
                ),
                130,
            ),
        ],
        className="controls",
    )
    pager = html.Div(
        [
            html.Button("← Newer", id="ex-prev", className="button", disabled=True),
            html.Span(id="ex-page-label", className="page-label"),
            html.Button("Older →", id="ex-next", className="button", disabled=True),
        ],
        className="pager",
    )
    return html.Div(
        [
            dcc.Store(id="ex-page", data=0),
            controls,
            pager,
            dcc.Loading(
                table(
                    "ex-rows",
                    [(c, LABELS[c]) for c in EXPLORER_COLUMNS if c in LABELS],
                    page_size=PAGE_SIZE,
                ),
                type="dot",
            ),
            html.Div(id="ex-empty"),
            html.Div(HINT, id="ex-detail", className="ex-detail"),
        ],
        className="explorer panel wide",
    )


HINT = html.P(
    "Click a row to see its exception, validation errors and captured request and response.",
    className="muted",
)


def _sized(component, width: int) -> html.Div:
    return html.Div(component, style={"width": f"{width}px"}, className="control")


class FilterError(ValueError):
    """An explorer control holds what it cannot; the message names the control."""


STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
TEXT_MAX = 300  # hostnames and path fragments
MS_MAX = 86_400_000  # a day, in ms: response times past it are not a filter anyone means


def _day(value, label: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        return datetime.combine(date.fromisoformat(value[:10]), datetime.min.time(), tzinfo=UTC)
    except (TypeError, ValueError):
        problem = f"'{label}' must be a day like 2024-01-31, not {_shown(value)}."
        raise FilterError(problem) from None


def _ms(value, label: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FilterError(f"'{label}' must be a number of ms, not {_shown(value)}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise FilterError(f"'{label}' must be a number of ms, not {_shown(value)}.")
    if not 0 <= value <= MS_MAX:
        raise FilterError(f"'{label}' must be between 0 and {MS_MAX:,} ms, not {value:,.0f}.")
    return int(value)


def _choice(value, label: str, allowed) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or value not in allowed:
        raise FilterError(f"'{label}' must be one of {', '.join(allowed)}, not {_shown(value)}.")
    return value


def _text(value, label: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise FilterError(f"'{label}' must be text, not {_shown(value)}.")
    if len(value) > TEXT_MAX or "\x00" in value:
        raise FilterError(f"'{label}' takes up to {TEXT_MAX} characters (no NUL).")
    return value.strip() or None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def filters_from(start, end, status, method, hostname, path, rt_min, rt_max) -> ExplorerFilters:
    """The explorer's inputs -> ExplorerFilters (the end date is inclusive); FilterError
    names the first control that holds something it cannot (a forged value of any type)."""
    until = _day(end, "To")
    return ExplorerFilters(
        since=_day(start, "From"),
        until=until + timedelta(days=1) if until else None,
        status_class=_choice(status, "Status", STATUS_CLASSES),
        method=_choice(method, "Method", METHODS),
        hostname=_text(hostname, "Hostname"),
        path_contains=_text(path, "Path contains"),
        rt_min=_ms(rt_min, "Min ms"),
        rt_max=_ms(rt_max, "Max ms"),
    )


def register(app) -> None:
    @app.callback(
        Output("ex-rows", "data"),
        Output("ex-page", "data"),
        Output("ex-page-label", "children"),
        Output("ex-prev", "disabled"),
        Output("ex-next", "disabled"),
        Output("ex-empty", "children"),
        Output("ex-hostname", "options"),
        Output("ex-rows", "active_cell"),
        Input("ex-prev", "n_clicks"),
        Input("ex-next", "n_clicks"),
        *[Input(cid, prop) for cid, prop in FILTER_INPUTS],
        State("ex-page", "data"),
        State("url", "pathname"),
    )
    def show_rows(_prev, _next, *rest):
        """Newer/older turn the page; any filter change goes back to the newest rows."""
        values, page, pathname = rest[:-2], rest[-2], rest[-1]
        page = page if isinstance(page, int) and 0 <= page < MAX_PAGE else 0
        if ctx.triggered_id == "ex-next":
            page += 1
        elif ctx.triggered_id == "ex-prev":
            page = max(0, page - 1)
        else:
            page = 0
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, page_path(pathname))
        key_id = viewer.key_id
        if key_id is None:
            reason = share_problem_text(viewer.share)[1] if viewer.share else "Sign in first."
            notice = html.Div(reason, className="notice", id="ex-gone")
            return [], 0, "", True, True, notice, [], None
        try:
            # A share link's restrictions apply to every page of rows, whatever the inputs say.
            filters = replace(filters_from(*values), fixed=viewer.fixed)
        except FilterError as exc:
            notice = html.Div(str(exc), className="notice error", id="ex-bad-filter")
            return [], 0, "", True, True, notice, no_update, None
        frame, more = explorer_page(key_id, filters, page, PAGE_SIZE)
        share_host = viewer.share.hostname if viewer.share else None
        hosts = [share_host] if share_host else hostnames(key_id)
        empty = (
            html.Div("No requests match these filters.", className="notice")
            if frame.empty
            else None
        )
        first = page * PAGE_SIZE + 1
        label = f"Rows {first:,}–{first + len(frame) - 1:,}" if len(frame) else f"Page {page + 1}"
        options = [{"label": h, "value": h} for h in hosts]
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for record in records:
            record["detail"] = detail_text(record.get("detail"))
        return records, page, label, page == 0, not more, empty, options or no_update, None

    @app.callback(
        Output("ex-detail", "children"),
        Input("ex-rows", "active_cell"),
        State("ex-rows", "derived_viewport_data"),
        *[State(cid, prop) for cid, prop in FILTER_INPUTS],
        State("ex-page", "data"),
        State("url", "pathname"),
    )
    def show_detail(cell, rows, *rest):
        """The clicked request's exception, validation errors and captures."""
        row = table_row(cell, rows)
        if row is None:
            return HINT
        detail_id = parse_id(row.get("detail"))
        if detail_id is None:
            return html.P(NO_DETAILS, className="notice", id="ex-detail-none")
        viewer = viewer_at(rest[-1])
        if viewer.key_id is None:
            return html.P("Sign in first.", className="notice")
        if viewer.fixed and not _on_page(viewer, rest[:-2], rest[-2], detail_id):
            return html.P("That request is not on this page any more.", className="notice")
        return request_details(capture(viewer.key_id, detail_id), "ex-detail")


NO_DETAILS = (
    "This request carried no exception, validation errors or captured request and response."
)


def _on_page(viewer, values, page, detail_id: int) -> bool:
    """Whether a share link's page of rows holds this detail, asked again under the link's
    restrictions: the table's row only names the request, and a forged name must not open
    one of the key's requests the link does not show."""
    if not isinstance(page, int) or not 0 <= page < MAX_PAGE:
        return False
    try:
        filters = replace(filters_from(*values), fixed=viewer.fixed)
    except (TypeError, ValueError):
        return False
    frame, _more = explorer_page(viewer.key_id, filters, page, PAGE_SIZE)
    return str(detail_id) in {detail_text(d) for d in frame["detail"].astype(object)}
