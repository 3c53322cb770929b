"""The dashboard's key forms: create a key, and the settings page's actions.

Every form is a POST carrying the session's CSRF token (server.csrf), and
server.csrf.init_same_origin refuses one from another origin. A new secret (a key, a
share link) is shown once, in the answer to the POST itself: it is never in a URL, a
redirect, a cookie or a log line, and is stored nowhere but the browser's page. That
answer renews the CSRF token, so reloading it (the browser posts the form again) is
refused instead of showing or making a secret again, and it is marked no-store so the
back button cannot bring it back from a cache.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template_string,
    request,
    session,
)

from dash_app.session import SESSION_ID, current_session, start_session
from server.auth import rotation_grace
from server.csrf import FIELD as CSRF_FIELD
from server.csrf import csrf_ok, new_csrf_token
from server.db import get_engine, utcnow
from server.keys.api_keys import create_key, delete_key, rename_key, rotate_key, touch_key
from server.keys.caps import CapReached
from server.keys.invites import SignupRefused, check_signup
from server.keys.masks import KINDS as MASK_KINDS
from server.keys.masks import MASK_LIMIT, add_mask, delete_mask, list_masks
from server.keys.sessions import end_session, end_sessions
from server.keys.shares import ShareError, create_share, revoke_share
from server.ratelimit import key_creation_wait

log = logging.getLogger(__name__)
bp = Blueprint("dashboard_keys", __name__)
DELETE_WORD = "DELETE"
SHARE_FILTER_FIELDS = ("status", "status_class", "endpoint", "location")
EXPIRED_FORM = "This form had expired (or came from another site): nothing was changed. Try again."


@bp.post("/dashboard/create-key")
def create_key_form():
    """Make a key, sign this browser in with it, and show it once with the snippet."""
    if not csrf_ok(request.form.get(CSRF_FIELD)):
        # A foreign page, or this very page reloaded after it showed its key.
        return redirect("./?signin=expired", code=303)
    try:
        check_signup(current_app.config["SETTINGS"].SIGNUP, None)
    except SignupRefused as exc:
        return Response(f"{exc}\n", status=403, mimetype="text/plain")
    refused = creation_refused()
    if refused is not None:
        return refused
    with get_engine().begin() as conn:
        key_id, key = create_key(conn)
        start_session(conn, key_id)
    log.info("created API key id=%s from the dashboard", key_id)
    return new_key_page(key)


def new_key_page(key: str):
    """The page that shows a key just made for this browser (now signed in), once."""
    return reveal(
        title="Your new API key",
        secret=key,
        note="Store it now: it is shown once, and only its hash is kept. You are signed in.",
        snippet=True,
        back=("Open the dashboard", "./"),
    )


def creation_refused() -> Response | None:
    """429 with Retry-After past KEY_CREATE_PER_HOUR for this address (else None)."""
    retry_after = key_creation_wait()
    if retry_after is None:
        return None
    limit = current_app.config["SETTINGS"].KEY_CREATE_PER_HOUR
    return Response(
        f"Too many keys made from this address: at most {limit} an hour "
        f"(KEY_CREATE_PER_HOUR). Try again in {retry_after} s.\n",
        status=429,
        mimetype="text/plain",
        headers={"Retry-After": str(retry_after)},
    )


@bp.post("/dashboard/settings")
def settings_form():
    """One endpoint for the settings page's forms, told apart by their `action` field."""
    with get_engine().connect() as conn:
        found = current_session(conn)
    if found is None:
        return redirect("./", code=303)
    key_id = found.key_id
    if not csrf_ok(request.form.get(CSRF_FIELD)):
        flash(EXPIRED_FORM, "error")
        return redirect("settings", code=303)
    action = request.form.get("action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        return Response(f"Unknown settings action {action!r}.\n", status=400, mimetype="text/plain")
    return handler(key_id)


def _rename(key_id: int) -> Response:
    try:
        with get_engine().begin() as conn:
            rename_key(conn, key_id, request.form.get("name") or "")
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash("Saved the name.", "done")
    return redirect("settings", code=303)


def _rotate(key_id: int) -> Response:
    with get_engine().connect() as conn:
        this = current_session(conn)
    with get_engine().begin() as conn:
        # Every other session of the key ends: they signed in with the old key.
        key, until = rotate_key(conn, key_id, rotation_grace(), keep_session=this.id)
        touch_key(conn, key_id)
    new_csrf_token()  # reloading the page that shows the key is refused, not repeated
    log.info("rotated API key id=%s from the dashboard", key_id)
    if until is None:
        note = "The previous key stopped working at once (KEY_ROTATION_GRACE_HOURS is 0)."
    else:
        note = (
            f"The previous key is still accepted for ingest only, until {until:%Y-%m-%d %H:%M} "
            "UTC: redeploy your middleware with this key before then."
        )
    return reveal(
        title="Your new API key",
        secret=key,
        note="Store it now: it is shown once. " + note,
        snippet=True,
        back=("Back to settings", "settings"),
    )


def _delete(key_id: int) -> Response:
    if request.form.get("confirm", "").strip() != DELETE_WORD:
        flash(f"Nothing was deleted: type {DELETE_WORD} in the box to confirm.", "error")
        return redirect("settings", code=303)
    delete_key(key_id)
    session.clear()
    log.info("deleted all data of key id=%s from the dashboard", key_id)
    return redirect("./?signin=deleted", code=303)


def _share(key_id: int) -> Response:
    form = request.form
    filters = {name: form.get(name, "") for name in SHARE_FILTER_FIELDS}
    days = (form.get("expires_days") or "").strip()
    try:
        expires_at = _expiry(days)
        with get_engine().begin() as conn:
            share_id, token = create_share(
                conn,
                key_id,
                label=form.get("label"),
                hostname=form.get("hostname"),
                filters=filters,
                expires_at=expires_at,
                limit=current_app.config["SETTINGS"].SHARE_LIMIT,
            )
    except (ShareError, CapReached) as exc:
        flash(f"No link was made: {exc}", "error")
        return redirect("settings", code=303)
    new_csrf_token()
    log.info("created share link id=%s for key id=%s", share_id, key_id)
    return reveal(
        title="Your share link",
        secret=request.url_root + f"dashboard/s/{token}",
        note="Copy it now: it is shown once, and only its hash is kept. Anyone with the link "
        "sees this key's overview and explorer, read-only, until you revoke it.",
        snippet=False,
        back=("Back to settings", "settings"),
    )


def _expiry(days: str):
    if not days:
        return None
    if not days.isdigit() or not 1 <= int(days) <= 3650:
        raise ShareError(f"'expires in days' must be a whole number from 1 to 3650, not {days!r}.")
    return utcnow() + timedelta(days=int(days))


def _revoke(key_id: int) -> Response:
    raw = request.form.get("share_id", "")
    with get_engine().begin() as conn:
        found = _form_id(raw) is not None and revoke_share(conn, key_id, _form_id(raw))
    if found:
        flash("Revoked the link: it stopped working at once.", "done")
    else:
        flash("No such link for this key.", "error")
    return redirect("settings", code=303)


def masks_of(key_id: int) -> list[dict]:
    """The key's own masking patterns (the settings page lists them)."""
    with get_engine().connect() as conn:
        return list_masks(conn, key_id)


def _add_mask(key_id: int) -> Response:
    kind = request.form.get("kind", "")
    pattern = request.form.get("pattern", "")
    if "\x00" in pattern:  # PostgreSQL's text holds no NUL: refused here, not as a 500
        flash("No pattern was added: it holds a NUL character.", "error")
        return redirect("settings", code=303)
    try:
        with get_engine().begin() as conn:
            added = add_mask(conn, key_id, kind, pattern)
    except (ValueError, CapReached) as exc:
        flash(f"No pattern was added: {exc}", "error")
    else:
        flash(f"Masking {added['kind']} names matching {added['pattern']!r} from now on.", "done")
    return redirect("settings", code=303)


def _delete_mask(key_id: int) -> Response:
    raw = request.form.get("mask_id", "")
    with get_engine().begin() as conn:
        found = _form_id(raw) is not None and delete_mask(conn, key_id, _form_id(raw))
    if found:
        flash("Deleted the pattern: requests logged from now on no longer use it.", "done")
    else:
        flash("No such pattern for this key.", "error")
    return redirect("settings", code=303)


def _end_session(key_id: int) -> Response:
    session_id = _form_id(request.form.get("session_id", ""))
    with get_engine().connect() as conn:
        this = current_session(conn)
    with get_engine().begin() as conn:
        found = session_id is not None and end_session(conn, key_id, session_id)
    if not found:
        flash("No such open session for this key.", "error")
        return redirect("settings", code=303)
    if this is not None and session_id == this.id:  # this browser's own: signed out
        session.pop(SESSION_ID, None)
        return redirect("./", code=303)
    flash("Ended the session: that browser is signed out.", "done")
    return redirect("settings", code=303)


def _end_other_sessions(key_id: int) -> Response:
    with get_engine().connect() as conn:
        this = current_session(conn)
    with get_engine().begin() as conn:
        ended = end_sessions(conn, key_id, keep=this.id)
    flash(f"Ended {ended} other session{'' if ended == 1 else 's'}: only this browser is "
          "signed in now.", "done")  # fmt: skip
    return redirect("settings", code=303)


def _form_id(raw: str) -> int | None:
    """A row id from a form field, or None (a forged one is no id at all)."""
    if raw.isascii() and raw.isdigit() and len(raw) < 10 and int(raw) > 0:
        return int(raw)
    return None


MASK_FIELDS = {"kinds": MASK_KINDS, "limit": MASK_LIMIT}

ACTIONS = {
    "name": _rename,
    "rotate": _rotate,
    "delete": _delete,
    "share": _share,
    "revoke": _revoke,
    "mask": _add_mask,
    "unmask": _delete_mask,
    "end_session": _end_session,
    "end_sessions": _end_other_sessions,
}


def reveal(title: str, secret: str, note: str, snippet: bool, back: tuple[str, str]) -> Response:
    """The one page that holds a new secret; never cached, never linked to."""
    page = render_template_string(
        REVEAL_PAGE,
        title=title,
        secret=secret,
        note=note,
        snippet=snippet,
        back=back,
        style=request.script_root + "/dashboard/assets/style.css",
    )
    return Response(
        page,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


REVEAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API Analytics: {{ title }}</title>
<link rel="stylesheet" href="{{ style }}"></head>
<body><main><div class="signin panel reveal">
<h2>{{ title }}</h2>
<p>{{ note }}</p>
<div class="secret-line"><code id="new-secret">{{ secret }}</code>
<button type="button" class="button" id="copy-secret"
 onclick="copySecret('new-secret', this)">Copy</button></div>
{% if snippet %}
<h3>Add it to your FastAPI app</h3>
<pre id="snippet"><code>from fastapi import FastAPI
from api_analytics.fastapi import Analytics

app = FastAPI()
app.add_middleware(Analytics, api_key="{{ secret }}")</code></pre>
<button type="button" class="button" id="copy-snippet"
 onclick="copySecret('snippet', this)">Copy the code</button>
{% endif %}
<p><a class="button" id="reveal-continue" href="{{ back[1] }}">{{ back[0] }}</a></p>
</div></main>
<script>
function copySecret(id, button) {
  const text = document.getElementById(id).textContent;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallback(id, done));
  } else {
    fallback(id, done);
  }
}
function fallback(id, done) {
  const range = document.createRange();
  range.selectNodeContents(document.getElementById(id));
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  if (document.execCommand("copy")) { done(); }
}
</script></body></html>
"""
