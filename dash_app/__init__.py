"""The Dash dashboard, mounted on the Flask server at /dashboard."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, dcc, get_relative_path, html, no_update
from flask import redirect

log = logging.getLogger(__name__)
PREFIX = "/dashboard/"
ASSETS = Path(__file__).resolve().parent / "assets"


def init_dash(server) -> Dash:
    """Mount the dashboard on `server`: its pages, callbacks and the session routes."""
    from dash_app.pages import alerts, explorer, monitors, overview
    from dash_app.session import bp

    server.register_blueprint(bp)
    app = Dash(
        __name__,
        server=server,
        url_base_pathname=PREFIX,
        assets_folder=str(ASSETS),
        title="API Analytics",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    app.layout = shell
    # Browsers ask every site for /favicon.ico (the API docs page has no icon of its own).
    server.add_url_rule(
        "/favicon.ico", "favicon", lambda: redirect("dashboard/_favicon.ico", code=301)
    )
    _register_router(app)
    overview.register(app)
    explorer.register(app)
    monitors.register(app)
    alerts.register(app)
    server.extensions["dash_app"] = app
    return app


def shell() -> html.Div:
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="page-id"),
            html.Header(
                [
                    html.A("API Analytics", href=get_relative_path("/"), className="brand"),
                    html.Nav(id="nav"),
                ],
                className="topbar",
            ),
            html.Main(id="page"),
        ]
    )


PAGES = {"": "overview", "explorer": "explorer", "monitors": "monitors", "alerts": "alerts"}
# Pages of a signed-in key only: the demo key has no one to notify.
SIGNED_IN_ONLY = frozenset({"alerts"})


def route(page_path: str) -> tuple[bool, str | None]:
    """'demo/explorer' -> (True, 'explorer'); an unknown path -> (demo?, None)."""
    parts = [p for p in page_path.split("/") if p]
    demo = bool(parts) and parts[0] == "demo"
    rest = "/".join(parts[1:] if demo else parts)
    return demo, PAGES.get(rest)


def _register_router(app: Dash) -> None:
    from dash import strip_relative_path

    from dash_app.pages import alerts, explorer, monitors, overview
    from dash_app.session import key_for
    from server.db import get_engine

    layouts = {
        "overview": overview.layout,
        "explorer": explorer.layout,
        "monitors": monitors.layout,
        "alerts": alerts.layout,
    }

    @app.callback(
        Output("page", "children"),
        Output("nav", "children"),
        Output("page-id", "data"),
        Input("url", "pathname"),
        State("url", "search"),
        State("page-id", "data"),
    )
    def show_page(pathname, search, current):
        page_path = strip_relative_path(pathname or "/") or ""
        demo, page = route(page_path)
        with get_engine().connect() as conn:
            key_id = key_for(conn, demo)
        page_id = f"{'demo' if demo else 'key'}:{page}:{key_id}"
        if page_id == current:
            return no_update, no_update, no_update
        if page is None:
            body = html.Div("No such page.", className="notice panel wide")
        elif demo and page in SIGNED_IN_ONLY:
            body = html.Div(
                "Alerts belong to a signed-in key: sign in with yours to set them up.",
                className="notice panel wide",
            )
        elif key_id is None and demo:
            body = html.Div(
                "The demo has no data yet: run `flask --app wsgi seed-demo`.",
                className="notice panel wide",
            )
        elif key_id is None:
            return sign_in_page(search), nav(demo, signed_in=False), page_id
        else:
            body = layouts[page](page_path)
        return body, nav(demo, signed_in=key_id is not None and not demo, page=page), page_id


def nav(demo: bool, signed_in: bool, page: str | None = None) -> list:
    base = "/demo" if demo else ""
    links = []
    if demo or signed_in:
        for name, label, path in (
            ("overview", "Overview", base or "/"),
            ("explorer", "Explorer", f"{base}/explorer"),
            ("monitors", "Uptime", f"{base}/monitors"),
            *([("alerts", "Alerts", "/alerts")] if signed_in and not demo else []),
        ):
            cls = "nav-link active" if page == name else "nav-link"
            links.append(dcc.Link(label, href=get_relative_path(path), className=cls))
    if demo:
        links.append(html.Span("Demo data", className="badge"))
        links.append(html.A("Sign in", href=get_relative_path("/"), className="button"))
    elif signed_in:
        links.append(
            html.Form(
                [
                    csrf_input(),
                    html.Button("Sign out", type="submit", className="button", id="sign-out"),
                ],
                method="POST",
                action=get_relative_path("/sign-out"),
                className="inline-form",
            )
        )
    else:
        links.append(dcc.Link("See the demo", href=get_relative_path("/demo"), className="button"))
    return links


SIGN_IN_ERRORS = {
    "failed": "That API key is not valid: check that you pasted the whole key.",
    "expired": "The sign-in form had expired (or came from another site): paste your key again.",
}


def csrf_input() -> dcc.Input:
    """The form's CSRF token (server.csrf), for this browser's session."""
    from server.csrf import FIELD, csrf_token

    return dcc.Input(type="hidden", name=FIELD, value=csrf_token())


def sign_in_page(search: str | None) -> html.Div:
    args = parse_qs((search or "").lstrip("?"))
    error = SIGN_IN_ERRORS.get((args.get("signin") or [""])[0])
    keep = "" if error else (search or "")
    return html.Div(
        [
            html.H2("Sign in"),
            html.P("Paste your API key. It is sent once, in the form body, and never kept here."),
            html.Div(error, className="error", id="signin-error") if error else None,
            html.Form(
                [
                    csrf_input(),
                    dcc.Input(
                        id="signin-key",
                        name="api_key",
                        type="password",
                        placeholder="API key",
                        autoComplete="off",
                        required=True,
                        className="key-input",
                    ),
                    dcc.Input(type="hidden", name="next", value=keep, id="signin-next"),
                    html.Button("Sign in", type="submit", id="signin-submit", className="button"),
                ],
                method="POST",
                action=get_relative_path("/sign-in"),
                className="signin-form",
            ),
            html.P(
                [
                    "No key yet? Create one with POST /api/keys, or ",
                    dcc.Link("look at the demo", href=get_relative_path("/demo")),
                    ".",
                ]
            ),
        ],
        className="signin panel",
    )
