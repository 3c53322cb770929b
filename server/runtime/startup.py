"""What a start says once: notes on the configuration, and start-up errors in one line.

Notes (no country database, no ADMIN_TOKEN, ...) are facts about the settings, so the
first process of a start logs them (`make run`'s supervisor, or gunicorn's master) and
marks the environment its children inherit; each gunicorn worker, RQ worker and
scheduler then stays quiet instead of saying the same thing again.

Start-up errors (settings missing, a database or Redis out of reach, a port in use) are
explained in one line that names the problem and the fix, instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from server.config import Config, parse_smtp_url

NOTES_LOGGED = "API_ANALYTICS_NOTES_LOGGED"


@dataclass(frozen=True)
class Note:
    logger: str
    level: int
    message: str


def notes(config: Config) -> list[Note]:
    """What an operator should know about these settings."""
    found = []
    if config.embedded_queue:
        found.append(Note("server", logging.INFO, "no REDIS_URL: background jobs run in-process"))
        found.append(
            Note(
                "server.admin",
                logging.INFO,
                "no REDIS_URL: jobs run in-process, so there is no RQ dashboard (/admin/rq: 404)",
            )
        )
    elif config.ADMIN_TOKEN:
        found.append(
            Note(
                "server.admin",
                logging.INFO,
                "RQ dashboard at /admin/rq (HTTP basic: any user name, ADMIN_TOKEN as password)",
            )
        )
    else:
        found.append(
            Note(
                "server.admin",
                logging.WARNING,
                "ADMIN_TOKEN is not set: the RQ dashboard at /admin/rq is off and answers 404; "
                "set ADMIN_TOKEN to turn it on",
            )
        )
    found.append(Note("server", logging.INFO, _signup_note(config)))
    if config.SMTP_URL:
        smtp = parse_smtp_url(config.SMTP_URL)  # its repr never holds the password
        found.append(Note("server", logging.INFO, f"alert emails through {smtp!r}"))
    if config.GEOIP_DB:
        found.append(Note("server", logging.INFO, f"country lookup from {config.GEOIP_DB}"))
    else:
        found.append(
            Note(
                "server",
                logging.WARNING,
                "no GEOIP_DB (and no data/geo-whois-asn-country.mmdb): locations stay empty; "
                "run `make geoip` to fetch a free country database",
            )
        )
    return found


def _signup_note(config: Config) -> str:
    """Who may make keys, said once a start: a closed instance's POST /api/keys is a 403."""
    limit = config.KEY_CREATE_PER_HOUR
    rate = f"at most {limit} an hour from one address" if limit else "without a rate limit"
    if config.SIGNUP == "open":
        return f"SIGNUP=open: anyone may create a key, {rate} (KEY_CREATE_PER_HOUR)"
    how = "`flask --app wsgi keys create --name ...`"
    if config.SIGNUP == "invite":
        return (f"SIGNUP=invite: keys by invitation (`flask --app wsgi keys invite`), {rate}; "
                f"operators make keys with {how}")  # fmt: skip
    return f"SIGNUP=closed: only operators make keys, with {how} or POST /api/admin/keys"


def announce(config: Config, *, for_children: bool = False) -> None:
    """Log the notes unless a parent process of this start already did.

    A launcher (`make run`, gunicorn's master) passes `for_children`: the processes it
    starts inherit the mark and stay quiet.
    """
    if os.environ.get(NOTES_LOGGED):
        return
    for note in notes(config):
        logging.getLogger(note.logger).log(note.level, note.message)
    if for_children:
        os.environ[NOTES_LOGGED] = "1"


# --- Start-up errors ---------------------------------------------------------------------


class StartupError(RuntimeError):
    """The service cannot start; str() is one line: the problem, then the fix."""


def check_port(host: str, port: int) -> None:
    """Refuse early, and plainly, a port something else listens on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses the port "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or start with PORT={port + 1}"
            ) from None


UNREACHABLE = (
    "connection refused",
    "could not connect",
    "connection failed",
    "timeout",
    "timed out",
    "no route",
    "name or service not known",
    "could not translate host name",
)


def explain_database_error(exc: BaseException, url: str) -> StartupError:
    """A database that cannot be reached or used, in one line."""
    where = make_url(url)
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if where.get_backend_name() == "sqlite":
        return StartupError(
            f"cannot open the SQLite database {where.database} ({first}): check that DATA_DIR "
            "(or the path in DATABASE_URL) exists and is writable"
        )
    server = f"{where.host or 'localhost'}:{where.port or 5432}"
    lowered = text.lower()
    if "does not exist" in lowered and "database" in lowered:
        return StartupError(
            f'database "{where.database}" does not exist on the PostgreSQL server at {server}: '
            f"create it (`createdb -h {where.host or 'localhost'} -U {where.username or 'postgres'}"
            f" {where.database}`) or fix DATABASE_URL"
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return StartupError(
            f"PostgreSQL at {server} refused user {where.username!r} ({first}): check the user "
            "and password in DATABASE_URL"
        )
    if any(symptom in lowered for symptom in UNREACHABLE):
        return StartupError(
            f"PostgreSQL at {server} is unreachable ({first}): start it, or fix the host and "
            "port in DATABASE_URL"
        )
    return StartupError(f"the database at {server} cannot be used: {first}")


def check_redis(url: str) -> None:
    """Refuse early a Redis that does not answer."""
    from redis import Redis
    from redis.exceptions import RedisError

    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    try:
        Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except RedisError as exc:
        raise StartupError(
            f"Redis at {where} is unreachable ({exc}): start redis-server, fix REDIS_URL, or "
            "unset REDIS_URL to run the jobs inside the web process"
        ) from None
