"""gunicorn's access log without secrets and, by default, without the dashboard's plumbing.

A key sent in a URL (`?api_key=...`) is refused by the API, but the access log line is
written whatever the answer: every query value whose name looks like a credential, every
credential header, and the token of a share link's path (/dashboard/s/<token>, the
referer of its pages' requests too) are replaced by `[redacted]` before the line is
formatted.

ACCESS_LOG=requests (the default) leaves out the successful requests a browser makes by
itself to draw a page (the dashboard's scripts, styles, layout and callbacks, the API
docs' and the RQ dashboard's static files): a dozen lines or more per page view. Errors
are always logged. ACCESS_LOG=all logs everything, ACCESS_LOG=off nothing.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

from server.keys.shares import redact_share_paths

REDACTED = "[redacted]"
# Query parameters named like a credential, e.g. api_key, X-AUTH-TOKEN, access_token,
# password, secret, signature; %-encoded names match too (api%5Fkey still holds "key").
_SECRET_PARAM = re.compile(
    r"(?P<name>(?:^|[?&;])[^=&;#\s\"]*?"
    r"(?:key|token|secret|passw|pwd|auth|session|signature|credential|code)[^=&;#\s\"]*=)"
    r"[^&;#\s\"]*",
    re.IGNORECASE,
)
# Atoms that hold a URL, a path or a query string (request line, path, query, referer,
# raw URI): a share link's token is in its path, /dashboard/s/<token>.
URL_ATOMS = (
    "r",
    "U",
    "q",
    "f",
    "{referer}i",
    "{raw_uri}e",
    "{query_string}e",
    "{http_referer}e",
    "{path_info}e",
    "{request_uri}e",
)
# Atoms that are a credential whole.
SECRET_ATOMS = (
    "{x-auth-token}i",
    "{authorization}i",
    "{cookie}i",
    "{http_x_auth_token}e",
    "{http_authorization}e",
    "{http_cookie}e",
)
# Requests a browser makes by itself to draw a page (under their mount points).
PLUMBING = re.compile(
    r"^/(?:dashboard/(?:_dash-|assets/|_favicon\.ico|_reload-hash)"
    r"|api/docs/|admin/rq/static/|favicon\.ico$)"
)


def redact(text: str | None) -> str | None:
    """`text` with the value of every credential-like query parameter, and the token of
    every share link path, replaced."""
    text = redact_share_paths(text)
    if not text or "=" not in text:
        return text
    return _SECRET_PARAM.sub(lambda m: m.group("name") + REDACTED, text)


def is_plumbing(path: str | None, status) -> bool:
    """A successful request for a page's scripts, styles, layout or callbacks."""
    try:
        ok = int(str(status).split(None, 1)[0]) < 400
    except ValueError:
        ok = False
    return ok and bool(PLUMBING.match(path or ""))


class AccessLogger(Logger):
    """gunicorn's Logger, with the access log redacted and filtered (ACCESS_LOG)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        from server.config import Config

        self.mode = Config.from_env().ACCESS_LOG

    def access(self, resp, req, environ, request_time) -> None:
        if self.mode == "off":
            return
        if self.mode != "all" and is_plumbing(environ.get("PATH_INFO"), resp.status):
            return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in URL_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name])
        for name in SECRET_ATOMS:
            if atoms.get(name):
                atoms[name] = REDACTED
        return atoms
