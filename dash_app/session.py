"""Who is looking: a signed-in session (kept on the server), the demo key, or a share link.

Sign-in takes the pasted key from a POST body and starts a session (server.keys.sessions):
Flask's signed, HttpOnly, SameSite=Lax cookie holds a random token, the server its hash
and the key's id. Every request and callback of the dashboard looks the token up, so
signing out, ending the session in the settings, rotating or deleting the key, or the
session outliving SESSION_IDLE_DAYS or SESSION_MAX_DAYS ends it at once, wherever its
cookie has been copied to.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    request,
    session,
    stream_with_context,
)

from server.csrf import FIELD as CSRF_FIELD
from server.csrf import csrf_ok, new_csrf_token
from server.db import get_engine
from server.keys.api_keys import lookup_key, rotated_key_until, touch_key
from server.keys.caps import CapReached
from server.keys.sessions import (
    Lifetimes,
    Session,
    due_for_touch,
    end_expired,
    end_session,
    resolve_session,
    touch_session,
)
from server.keys.sessions import (
    start_session as start_server_session,
)
from server.keys.shares import GONE, Access, resolve_share

log = logging.getLogger(__name__)
bp = Blueprint("dashboard_session", __name__)
# The cookie's only credential: the session's random token (the server keeps its hash).
SESSION_ID = "dashboard_session"
DEMO_PREFIX = "demo"
SHARE_PREFIX = "s"


def demo_key_id(conn) -> int | None:
    from server.demo.seed import demo_key

    return demo_key(conn)


def lifetimes() -> Lifetimes:
    return Lifetimes.of(current_app.config["SETTINGS"])


def current_session(conn) -> Session | None:
    """This browser's live session, looked up once a request; a dead one is forgotten."""
    token = session.get(SESSION_ID)
    if token is None:
        return None
    if "dashboard_session" in g:
        return g.dashboard_session
    found, expired = resolve_session(conn, token, lifetimes())
    if found is None:
        session.pop(SESSION_ID, None)
        if expired:
            with get_engine().begin() as write:
                end_expired(write, lifetimes())
    elif due_for_touch(found):
        with get_engine().begin() as write:
            touch_session(write, found.id)
    g.dashboard_session = found
    return found


def signed_in_key_id(conn) -> int | None:
    """The key of this browser's session, if the session is still open."""
    found = current_session(conn)
    return found.key_id if found is not None else None


def is_demo_path(page_path: str | None) -> bool:
    """page_path is the dashboard-relative path ('demo', 'demo/explorer', 'explorer', ...)."""
    return (page_path or "").split("/", 1)[0] == DEMO_PREFIX


def key_for(conn, demo: bool) -> int | None:
    return demo_key_id(conn) if demo else signed_in_key_id(conn)


def split_path(page_path: str | None) -> tuple[str, str | None, str]:
    """'demo/explorer' -> ('demo', None, 'explorer'); 's/<token>/explorer' -> ('share',
    token, 'explorer'); 'settings' -> ('key', None, 'settings')."""
    parts = [p for p in (page_path or "").split("/") if p]
    if parts and parts[0] == DEMO_PREFIX:
        return "demo", None, "/".join(parts[1:])
    if parts and parts[0] == SHARE_PREFIX:
        return "share", parts[1] if len(parts) > 1 else "", "/".join(parts[2:])
    return "key", None, "/".join(parts)


@dataclass(frozen=True)
class Viewer:
    """Whose data a dashboard page shows: the signed-in key, the demo, or a share link's
    key under that link's fixed restrictions. `key_id` None: nothing to show."""

    kind: str  # key, demo or share
    key_id: int | None
    share: Access | None = None
    token: str | None = None

    @property
    def fixed(self) -> tuple[tuple[str, str], ...]:
        return self.share.fixed if self.share else ()

    @property
    def base(self) -> str:
        """The dashboard-relative path its pages live under ('', '/demo', '/s/<token>')."""
        return {"key": "", "demo": "/demo"}.get(self.kind, f"/{SHARE_PREFIX}/{self.token}")


def viewer_for(conn, page_path: str | None) -> Viewer:
    """Decide from the page's path. A share link is checked against the database every
    time (pages and each of their callbacks), so revoking it closes open pages at once."""
    kind, token, _rest = split_path(page_path)
    if kind == "share":
        access = resolve_share(conn, token)
        key_id = access.key_id if access.state == "active" else None
        return Viewer("share", key_id, access, token)
    return Viewer(kind, key_for(conn, kind == "demo"))


def share_access(token: str) -> Access:
    with get_engine().connect() as conn:
        return resolve_share(conn, token) if token else GONE


def start_session(conn, key_id: int) -> None:
    """Sign this browser in to the key, in the caller's transaction: a session row, its
    token in the cookie, a fresh form token. CapReached past SESSION_LIMIT."""
    _session_id, token = start_server_session(
        conn, key_id, request.headers.get("User-Agent"), lifetimes()
    )
    session.clear()
    session[SESSION_ID] = token
    new_csrf_token()
    session.permanent = True
    g.pop("dashboard_session", None)


@bp.post("/dashboard/sign-in")
def sign_in():
    """Check the pasted key and start a session; a wrong key goes back with a message."""
    key = (request.form.get("api_key") or "").strip()
    keep = _safe_query(request.form.get("next", ""))
    if not csrf_ok(request.form.get(CSRF_FIELD)):
        # A foreign page's form, or ours left open across a restart: no session either way.
        log.info("dashboard sign-in refused: missing or stale form token")
        return redirect("./?" + urlencode({"signin": "expired"}), code=303)
    try:
        with get_engine().begin() as conn:
            key_id = lookup_key(conn, key)
            if key_id is not None:
                touch_key(conn, key_id)
                start_session(conn, key_id)
            rotated = key_id is None and rotated_key_until(conn, key) is not None
    except CapReached:
        return redirect("./?" + urlencode({"signin": "sessions"}), code=303)
    if rotated:
        return redirect("./?" + urlencode({"signin": "rotated"}), code=303)
    if key_id is None:
        return redirect("./?" + urlencode({"signin": "failed"}), code=303)
    log.info("dashboard sign-in for key id=%s", key_id)
    return redirect("./" + keep, code=303)


@bp.post("/dashboard/sign-out")
def sign_out():
    if not csrf_ok(request.form.get(CSRF_FIELD)):
        return Response(
            "This sign-out form has expired: reload the page and sign out again.\n",
            status=400,
            mimetype="text/plain",
        )
    with get_engine().connect() as conn:
        found = current_session(conn)
    if found is not None:
        with get_engine().begin() as conn:
            end_session(conn, found.key_id, found.id)
        log.info("dashboard sign-out for key id=%s", found.key_id)
    session.pop(SESSION_ID, None)
    return redirect("./", code=303)


@bp.get("/dashboard")
def no_slash():
    return redirect("dashboard/", code=308)


def _safe_query(value: str) -> str:
    """Only a query string may ride along a sign-in redirect (no open redirects)."""
    value = value.strip()
    if not value.startswith("?") or "\n" in value or "\r" in value:
        return ""
    return value[:2000]


@bp.get("/dashboard/export.csv")
def export_csv():
    """The overview's filtered raw rows, newest first, as CSV (streamed)."""
    from server.stats.filters import Filters

    filters = Filters.from_query(request.query_string.decode("utf-8", "replace"))
    demo = request.args.get("demo") == "1"
    with get_engine().connect() as conn:
        key_id = key_for(conn, demo)
    if key_id is None:
        return Response("Sign in to export data.\n", status=401, mimetype="text/plain")
    return _csv(key_id, filters)


@bp.get("/dashboard/s/<token>/export.csv")
def share_export_csv(token: str):
    """A share link's export: its key's rows under the link's fixed restrictions."""
    from dataclasses import replace

    from server.stats.filters import Filters

    access = share_access(token)
    if access.state != "active":
        return share_problem(access)
    filters = Filters.from_query(request.query_string.decode("utf-8", "replace"))
    return _csv(access.key_id, replace(filters, fixed=access.fixed))


def _csv(key_id: int, filters) -> Response:
    from server.stats.raw import COLUMNS, export_rows

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        for i, row in enumerate(export_rows(key_id, filters)):
            writer.writerow(row)
            if i % 1000 == 999:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"api-analytics-{filters.period}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/dashboard/s/<token>")
@bp.get("/dashboard/s/<token>/<path:rest>")
def share_page(token: str, rest: str = ""):
    """A share link's pages: the dashboard when the link works, else a 404 or 410 page."""
    from flask import current_app

    access = share_access(token)
    if access.state != "active":
        return share_problem(access)
    return current_app.extensions["dash_app"].index()


def share_problem_text(access: Access) -> tuple[int, str]:
    if access.state == "expired":
        return 410, f"This share link expired on {access.expires_at:%Y-%m-%d %H:%M} UTC."
    return 404, "This share link was revoked or never existed."


def share_problem(access: Access) -> Response:
    from flask import render_template_string

    status, text = share_problem_text(access)
    style = request.script_root + "/dashboard/assets/style.css"
    page = render_template_string(PROBLEM_PAGE, text=text, style=style)
    return Response(page, status=status, mimetype="text/html")


PROBLEM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API Analytics: share link</title>
<link rel="stylesheet" href="{{ style }}"></head>
<body><main><div class="signin panel" id="share-problem"><h2>Share link</h2>
<p>{{ text }}</p><p>Ask whoever sent it for a new one.</p></div></main></body></html>
"""
