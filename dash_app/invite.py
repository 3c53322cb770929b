"""An invitation's page (SIGNUP=invite): /dashboard/invite#<token> makes a key, once.

The token rides in the link's fragment, which a browser never sends to a server, so it
reaches no access log and no Referer: the page's script copies it into the form, whose
POST carries it in the body (with the session's CSRF token). The answer shows the new
key once, like the sign-in page's Create a key, and signs the browser in.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, render_template_string, request

from dash_app.forms import creation_refused, new_key_page
from dash_app.session import start_session
from server.csrf import FIELD as CSRF_FIELD
from server.csrf import csrf_ok, csrf_token
from server.db import get_engine
from server.keys.caps import CapReached
from server.keys.invites import CLOSED, redeem_invite

log = logging.getLogger(__name__)
bp = Blueprint("dashboard_invite", __name__)


def _page(message: str | None = None, status: int = 200) -> Response:
    mode = current_app.config["SETTINGS"].SIGNUP
    page = render_template_string(
        INVITE_PAGE,
        message=message,
        closed=None if mode == "invite" else (CLOSED if mode == "closed" else OPEN),
        field=CSRF_FIELD,
        token=csrf_token(),
        style=request.script_root + "/dashboard/assets/style.css",
    )
    return Response(
        page,
        status=status,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


OPEN = "This server lets anyone make a key: no invitation needed. Press Create a key on its "
OPEN += "sign-in page."


@bp.get("/dashboard/invite")
def invite_page():
    """The form the invitation's script fills in from the link's fragment."""
    return _page()


@bp.post("/dashboard/invite")
def redeem():
    """Make the invited key, sign this browser in, and show the key once."""
    mode = current_app.config["SETTINGS"].SIGNUP
    if mode != "invite":
        text = CLOSED if mode == "closed" else OPEN
        return Response(f"Invitations are not taken here. {text}\n", status=403,
                        mimetype="text/plain")  # fmt: skip
    if not csrf_ok(request.form.get(CSRF_FIELD)):
        return _page("This form had expired (or came from another site): open the link again.",
                     400)  # fmt: skip
    refused = creation_refused()
    if refused is not None:
        return refused
    name = (request.form.get("name") or "").strip() or None
    try:
        with get_engine().begin() as conn:
            key_id, key = redeem_invite(conn, request.form.get("invite"), name)
            start_session(conn, key_id)
    except (ValueError, CapReached) as exc:
        return _page(str(exc), 403)
    log.info("created API key id=%s with an invitation", key_id)
    return new_key_page(key)


INVITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API Analytics: an invitation</title>
<link rel="stylesheet" href="{{ style }}"></head>
<body><main><div class="signin panel" id="invite">
<h2>You are invited</h2>
{% if closed %}<p id="invite-closed">{{ closed }}</p>{% else %}
<p>Make your API key: it is shown once, with the code to paste into your app, and signs
you in. The invitation works once.</p>
{% if message %}<div class="error" id="invite-error">{{ message }}</div>{% endif %}
<form method="POST" action="invite" class="signin-form" id="invite-form">
<input type="hidden" name="{{ field }}" value="{{ token }}">
<label class="field"><span>Invitation code</span>
<input type="password" name="invite" id="invite-code" autocomplete="off" required
 class="key-input"></label>
<label class="field"><span>Name your API (optional)</span>
<input type="text" name="name" id="invite-name" maxlength="100" placeholder="Shop API"
 class="key-input"></label>
<button type="submit" class="button" id="invite-submit">Create my key</button>
</form>{% endif %}
</div></main>
<script>
// The code rides after the # of the link: a browser never sends it to a server.
const code = decodeURIComponent(window.location.hash.slice(1));
if (code && document.getElementById("invite-code")) {
  document.getElementById("invite-code").value = code;
  history.replaceState(null, "", window.location.pathname);
}
</script></body></html>
"""
