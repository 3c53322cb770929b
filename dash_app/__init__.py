"""The Dash dashboard, mounted on the Flask server at /dashboard."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dash import Dash, Input, Output, State, dcc, get_relative_path, html, no_update
from flask import redirect

log = logging.getLogger(__name__)
PREFIX = "/dashboard/"
ASSETS = Path(__file__).resolve().parent / "assets"


def init_dash(server) -> Dash:
    """Mount the dashboard on `server`: its pages, callbacks and the session routes."""
    from dash_app.forms import bp as keys_bp
    from dash_app.invite import bp as invite_bp
    from dash_app.pages import (
        alerts,
        consumers,
        error_group,
        errors,
        explorer,
        ingest,
        monitors,
        overview,
        releases,
        slos,
    )
    from dash_app.session import bp
    from server.keys.shares import RedactShareTokens

    server.register_blueprint(bp)
    server.register_blueprint(keys_bp)
    server.register_blueprint(invite_bp)
    # Share links carry their token in the path: keep it out of Flask's own error lines.
    server.logger.addFilter(RedactShareTokens())
    app = Dash(
        __name__,
        server=server,
        url_base_pathname=PREFIX,
        assets_folder=str(ASSETS),
        title="API Analytics",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        # A callback that raises says so in the page (never a 500): callback_failed.
        on_error=callback_failed,
    )
    app.index_string = INDEX
    app.layout = shell

    @server.after_request
    def lasting_assets(response):
        """Our assets are linked with their file's time (`?m=`): a new file is a new URL,
        so the browser may keep one for good instead of asking again on every page load
        (three 304s before Dash's scripts could run)."""
        from flask import request

        if (
            request.path.startswith(f"{PREFIX}assets/")
            and request.args.get("m")
            and response.status_code in (200, 304)  # a 304 renews what the browser holds
        ):
            response.cache_control.no_cache = None
            response.cache_control.public = True
            response.cache_control.max_age = 31536000
            response.cache_control.immutable = True
        return response

    @server.after_request
    def private_layout(response):
        """The layout holds the signed-in viewer's page (shell): never kept by a cache."""
        from flask import request

        if request.path == f"{PREFIX}_dash-layout":
            response.headers["Cache-Control"] = "no-store"
            response.vary.update(("Cookie", "Referer"))
        return response

    # Browsers ask every site for /favicon.ico (the API docs page has no icon of its own).
    server.add_url_rule(
        "/favicon.ico", "favicon", lambda: redirect("dashboard/_favicon.ico", code=301)
    )
    _register_router(app)
    overview.register(app)
    explorer.register(app)
    monitors.register(app)
    alerts.register(app)
    errors.register(app)
    error_group.register(app)
    consumers.register(app)
    slos.register(app)
    releases.register(app)
    ingest.register(app)
    server.extensions["dash_app"] = app
    # Dash prepares what it serves (the scripts it may hand out, the callbacks) on a
    # process's first request, marking that done before doing it: the other threads of a
    # fresh gunicorn worker, asked for the page's scripts at the same moment, answered
    # 500 and left the page blank (tests/dash_app/test_serving.py). Prepared here instead,
    # before any request.
    with server.test_request_context(PREFIX):
        app._setup_server()
    return app


# Dash's scripts begin with Babel's polyfill (core-js 2, which dash_core_components still
# needs for its regeneratorRuntime). Judging today's browsers' whitespace rules wrong, it
# replaces their parseFloat, parseInt and String trims (and Math.sinh, and
# Function.prototype.toString to hide that) by its own, in script: 35x slower in Chromium
# (300,000 parseFloat, Number and trim calls: 1.8 s against 0.05 s), and Plotly calls
# them all through drawing. The page keeps the browser's own, put back once Dash's
# scripts ran, before anything draws (bench/README.md, "The polyfill").
_NATIVES = (
    "[[window,'parseFloat'],[window,'parseInt'],[Number,'parseFloat'],[Number,'parseInt'],"
    "[String.prototype,'trim'],[String.prototype,'trimStart'],[String.prototype,'trimLeft'],"
    "[String.prototype,'trimEnd'],[String.prototype,'trimRight'],[Math,'sinh'],"
    "[Function.prototype,'toString']]"
)
_KEEP_NATIVES = (
    f"<script>window.__natives={_NATIVES}.map(function(p){{return [p[0],p[1],p[0][p[1]]]}});"
    "</script>"
)
_PUT_BACK_NATIVES = (
    "<script>(window.__natives||[]).forEach(function(p){if(p[0][p[1]]!==p[2])"
    "Object.defineProperty(p[0],p[1],{value:p[2],writable:true,configurable:true,"
    "enumerable:false})});delete window.__natives;</script>"
)
# Dash's own page (dash.dash._default_index), the natives kept around its scripts.
# The scripts Dash's components load only once the page's layout has arrived (dcc.Graph
# and Plotly, the dropdown, the table): asked for with the page's own scripts instead of
# after the layout's round trip. They have no version in their names, so the browser
# asks the server again on every page load (a 304, through the same busy web processes
# as the callbacks); preloaded, that happens beside the layout's request, not after it.
_LAZY_SCRIPTS = (
    "dash/dcc/async-graph.js",
    "plotly/package_data/plotly.min.js",
    "dash/dcc/async-dropdown.js",
    "dash/dash_table/async-table.js",
    "dash/dash_table/async-highlight.js",
)
_PRELOADS = "\n".join(
    f'        <link rel="preload" as="script" href="{PREFIX}_dash-component-suites/{path}">'
    for path in _LAZY_SCRIPTS
)
INDEX = f"""<!DOCTYPE html>
<html>
    <head>
        {{%metas%}}
        <title>{{%title%}}</title>
        {{%favicon%}}
        {{%css%}}
{_PRELOADS}
    </head>
    <body>
        {{%app_entry%}}
        <footer>
            {{%config%}}
            {_KEEP_NATIVES}
            {{%scripts%}}
            {_PUT_BACK_NATIVES}
            {{%renderer%}}
        </footer>
    </body>
</html>"""


def shell() -> html.Div:
    """The page's frame. Asked for by the page the browser loaded (Dash's layout request,
    whose Referer is that page's URL), it comes with that page already in it, so the
    page's callbacks leave at once instead of after the router's round trip; without a
    Referer the router draws it (show_page), as it does for every link followed after."""
    body, links, page_id = _first_page() or (None, None, None)
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="page-id", data=page_id),
            html.Header(
                [
                    html.Div(
                        [
                            html.A("API Analytics", href=get_relative_path("/"), className="brand"),
                            html.Span(id="api-name", className="api-name"),
                        ],
                        className="brand-line",
                    ),
                    html.Nav(links, id="nav"),
                ],
                className="topbar",
            ),
            html.Div(id="page-error", role="alert"),
            html.Main(body, id="page"),
        ]
    )


def _first_page() -> tuple | None:
    """The page the layout request was made for, rendered (render_page), or None: not a
    dashboard page's request, no Referer, or rendering it failed (the router will)."""
    from flask import has_request_context, request

    if not has_request_context() or not request.referrer:
        return None
    url = urlsplit(request.referrer)
    if not url.path.startswith(PREFIX) or url.netloc != request.host:
        return None  # another site's page, or one behind a proxy that rewrites the host
    search = f"?{url.query}" if url.query else ""
    try:
        return render_page(url.path, search, None, request.referrer.split("#")[0], "")
    except Exception:
        log.exception("the first page could not be drawn with the layout; the router will")
        return None


def callback_failed(exc: Exception) -> None:
    """What a callback that raised leaves: its outputs as they were, and a line above the
    page saying why (the key busy, or values this page does not take); logged."""
    from dash import set_props

    from server.stats import EngineBusy

    if isinstance(exc, EngineBusy):
        text = str(exc)
    else:
        log.exception("a dashboard callback failed", exc_info=exc)
        text = (
            "This part of the page could not be updated (the values it was sent are not ones "
            "it takes, or something went wrong on the server; it is logged). Reload the page."
        )
    set_props("page-error", {"children": html.Div(text, className="error", id="page-error-text")})


PAGES = {
    "": "overview",
    "explorer": "explorer",
    "errors": "errors",
    "consumers": "consumers",
    "monitors": "monitors",
    "alerts": "alerts",
    "slos": "slos",
    "releases": "releases",
    "ingest": "ingest",
    "settings": "settings",
}
# 'errors/<id>': one error group's page.
GROUP_PAGE = re.compile(r"errors/[0-9]{1,19}")
# What each kind of viewer may open: a share link never sees monitors, alerts or settings;
# the demo has no settings, and no alerts (nobody to notify). A share link sees errors
# (under its fixed filters, like every page of it) but not the consumers page: that is the
# owner's list of customers by name and group, business data beyond the requests the link
# was made to show.
ALLOWED = {
    "key": {*PAGES.values(), "error"},
    "demo": {"overview", "explorer", "errors", "error", "consumers", "monitors"},
    "share": {"overview", "explorer", "errors", "error"},
}


def route(page_path: str) -> tuple[str, str | None]:
    """'demo/explorer' -> ('demo', 'explorer'); 's/<token>' -> ('share', 'overview');
    'errors/12' -> ('key', 'error'); an unknown page, or one the viewer may not open ->
    (kind, None)."""
    from dash_app.session import split_path

    kind, _token, rest = split_path(page_path)
    page = "error" if GROUP_PAGE.fullmatch(rest) else PAGES.get(rest)
    return kind, page if page in ALLOWED[kind] else None


def render_page(pathname, search, current, href=None, hash_=None):
    """The page at `pathname` for the browser's session: (its body, the nav, its id), or
    three no_update when `current` (the id of the page shown) is that page already."""
    from dash_app.pages import (
        alerts,
        consumers,
        error_group,
        errors,
        explorer,
        ingest,
        monitors,
        overview,
        releases,
        settings,
        slos,
    )
    from dash_app.pages.common import page_path as relative_path
    from dash_app.session import share_problem_text, split_path, viewer_for
    from server.db import get_engine

    layouts = {
        "overview": overview.layout,
        "explorer": explorer.layout,
        "monitors": monitors.layout,
        "alerts": alerts.layout,
        "errors": errors.layout,
        "error": error_group.layout,
        "consumers": consumers.layout,
        "slos": slos.layout,
        "releases": releases.layout,
        "ingest": ingest.layout,
    }
    page_path = relative_path(pathname)
    kind, page = route(page_path)
    with get_engine().connect() as conn:
        viewer = viewer_for(conn, page_path)
    # Each group's page is a page of its own: going from one to another draws it anew.
    shown = split_path(page_path)[2] if page == "error" else page
    page_id = f"{kind}:{shown}:{viewer.key_id}"
    if page_id == current:
        return no_update, no_update, no_update
    if kind == "share" and viewer.key_id is None:
        _status, text = share_problem_text(viewer.share)
        body = html.Div(text, className="notice panel wide", id="share-problem")
        return body, [], page_id
    if kind == "demo" and PAGES.get(split_path(page_path)[2]) == "alerts":
        body = html.Div(
            "Alerts belong to a signed-in key: sign in with yours to set them up.",
            className="notice panel wide",
        )
    elif page is None:
        body = html.Div("No such page.", className="notice panel wide")
    elif viewer.key_id is None and kind == "demo":
        body = html.Div(
            "The demo has no data yet: run `flask --app wsgi seed-demo`.",
            className="notice panel wide",
        )
    elif viewer.key_id is None:
        return sign_in_page(search), nav(viewer, signed_in=False), page_id
    elif page == "settings":
        body = settings.layout(viewer.key_id)
    elif page == "overview":
        # A share link's token is in its path, and never in the page's own content: its
        # overview reads the URL on mount instead (one round trip more).
        location = None if kind == "share" else {
            "pathname": pathname, "search": search, "href": href, "hash": hash_}  # fmt: skip
        body = overview.layout(page_path, search, location)
    else:
        body = layouts[page](page_path)
    current = "errors" if page == "error" else page
    return body, nav(viewer, signed_in=viewer.key_id is not None, page=current), page_id


def _register_router(app: Dash) -> None:
    from dash_app.pages.common import page_path as relative_path
    from dash_app.session import viewer_for
    from server.db import get_engine
    from server.keys.api_keys import describe_key

    @app.callback(
        Output("page", "children"),
        Output("nav", "children"),
        Output("page-id", "data"),
        Input("url", "pathname"),
        State("url", "search"),
        State("page-id", "data"),
        State("url", "href"),
        State("url", "hash"),
    )
    def show_page(pathname, search, current, href=None, hash_=None):
        """The page for a new URL (a link followed in the page). The page the browser
        loaded came with the layout (shell): this answers no_update for it."""
        return render_page(pathname, search, current, href, hash_)

    @app.callback(Output("page-error", "children"), Input("url", "pathname"))
    def clear_error(_pathname):
        """Another page: the last one's failure line goes."""
        return None

    @app.callback(Output("api-name", "children"), Input("url", "pathname"))
    def show_name(pathname):
        """The API's name (settings) in the header; a share link adds its label."""
        with get_engine().connect() as conn:
            viewer = viewer_for(conn, relative_path(pathname))
            about = describe_key(conn, viewer.key_id) if viewer.key_id is not None else None
        parts = [(about or {}).get("name"), viewer.share.label if viewer.share else None]
        return " · ".join(p for p in parts if p)


def nav(viewer, signed_in: bool, page: str | None = None) -> list:
    base, kind = viewer.base, viewer.kind
    links = []
    if signed_in or kind == "demo":
        items = [
            ("overview", "Overview", base or "/"),
            ("explorer", "Explorer", f"{base}/explorer"),
            ("errors", "Errors", f"{base}/errors"),
            ("consumers", "Consumers", f"{base}/consumers"),
            ("monitors", "Uptime", f"{base}/monitors"),
            ("alerts", "Alerts", f"{base}/alerts"),
            ("slos", "SLOs", f"{base}/slos"),
            ("releases", "Releases", f"{base}/releases"),
            ("ingest", "Ingest", f"{base}/ingest"),
            ("settings", "Settings", f"{base}/settings"),
        ]
        for name, label, path in items:
            if name not in ALLOWED[kind]:
                continue
            cls = "nav-link active" if page == name else "nav-link"
            links.append(dcc.Link(label, href=get_relative_path(path), className=cls))
    if kind == "demo":
        links.append(html.Span("Demo data", className="badge"))
        links.append(html.A("Sign in", href=get_relative_path("/"), className="button"))
    elif kind == "share":
        links.append(html.Span("Shared view, read-only", className="badge", id="share-badge"))
    elif signed_in:
        sign_out = html.Button("Sign out", type="submit", className="button", id="sign-out")
        links.append(post_form("/sign-out", [sign_out], "inline-form"))
    else:
        links.append(dcc.Link("See the demo", href=get_relative_path("/demo"), className="button"))
    return links


SIGN_IN_ERRORS = {
    "failed": "That API key is not valid: check that you pasted the whole key.",
    "expired": "The sign-in form had expired (or came from another site): paste your key again.",
    "deleted": "The key and all its data were deleted.",
    "rotated": "That key was rotated: it still works for ingest for a while, but the dashboard "
    "takes only the new key.",
    "sessions": "That key has as many open dashboard sessions as it may have (SESSION_LIMIT): "
    "end one in Settings on a signed-in browser, or all with "
    "`curl -X DELETE -H 'X-AUTH-TOKEN: <key>' <server>/api/keys/current/sessions`.",
}


def csrf_input() -> dcc.Input:
    """The form's CSRF token (server.csrf), for this browser's session."""
    from server.csrf import FIELD, csrf_token

    return dcc.Input(type="hidden", name=FIELD, value=csrf_token())


def post_form(path: str, children: list, class_name: str, form_id: str | None = None):
    """A form that POSTs to the dashboard's `path` with this session's CSRF token."""
    props = {"id": form_id} if form_id else {}
    return html.Form(
        [csrf_input(), *children],
        method="POST",
        action=get_relative_path(path),
        className=class_name,
        **props,
    )


def sign_in_page(search: str | None) -> html.Div:
    args = parse_qs((search or "").lstrip("?"))
    error = SIGN_IN_ERRORS.get((args.get("signin") or [""])[0])
    keep = "" if error else (search or "")
    return html.Div(
        [
            html.H2("Sign in"),
            html.P("Paste your API key. It is sent once, in the form body, and never kept here."),
            html.Div(error, className="error", id="signin-error") if error else None,
            post_form(
                "/sign-in",
                [
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
                "signin-form",
            ),
            html.H3("No key yet?"),
            *sign_up_part(),
        ],
        className="signin panel",
    )


def sign_up_part() -> list:
    """Create a key, as SIGNUP allows: the button (open), or who to ask (closed, invite)."""
    from flask import current_app

    demo = dcc.Link("look at the demo", href=get_relative_path("/demo"))
    mode = current_app.config["SETTINGS"].SIGNUP
    if mode != "open":
        text = (
            "This server makes keys by invitation: open the invite link its operator sent you."
            if mode == "invite"
            else "This server's operator makes the keys: ask them for one."
        )
        return [html.P([text, " Meanwhile, ", demo, "."], id="signup-closed")]
    return [
        post_form(
            "/create-key",
            [html.Button("Create a key", type="submit", id="create-key", className="button")],
            "signin-form",
        ),
        html.P(
            [
                "It is shown once, with the middleware code to paste, and signs you in. Or ",
                demo,
                ".",
            ]
        ),  # fmt: skip
    ]
