"""The demo key's data: ~90 days of realistic traffic, through the same writers as real rows.

Rows are generated already enriched (the country stored directly, user agents resolved
through server.useragents) and written with server.lake.write.store_enriched: the same
writes as a batch, one transaction per chunk, then an export to the columnar store.
Running it again tops the demo up to the current time, so /dashboard/demo stays live.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import func, select

from server import useragents as useragent
from server.auth import create_key
from server.db import as_utc
from server.lake.users import number_users
from server.lake.write import build_row, store_enriched
from server.models import api_keys, lake_files, requests
from server.rules import user_key

log = logging.getLogger(__name__)
DAYS = 90
PER_DAY = 1_200
HOSTS = (("api.acme.dev", 0.70), ("eu.api.acme.dev", 0.22), ("staging.acme.dev", 0.08))

# (method, path, weight, median ms, sigma); {id} becomes a number, {uuid} a UUID.
ENDPOINTS = (
    ("GET", "/v1/users/{id}", 9.0, 38, 0.5),
    ("GET", "/v1/users", 5.0, 55, 0.5),
    ("POST", "/v1/users", 1.2, 90, 0.5),
    ("PATCH", "/v1/users/{id}", 0.9, 70, 0.5),
    ("DELETE", "/v1/users/{id}", 0.2, 60, 0.5),
    ("GET", "/v1/users/{id}/orders", 4.0, 80, 0.6),
    ("GET", "/v1/orders/{uuid}", 6.0, 45, 0.5),
    ("POST", "/v1/orders", 2.5, 140, 0.6),
    ("GET", "/v1/orders", 3.0, 95, 0.6),
    ("POST", "/v1/orders/{uuid}/cancel", 0.4, 120, 0.5),
    ("GET", "/v1/products", 8.0, 30, 0.6),
    ("GET", "/v1/products/{id}", 10.0, 18, 0.5),
    ("GET", "/v1/products/{id}/reviews", 2.0, 65, 0.6),
    ("POST", "/v1/products/{id}/reviews", 0.3, 110, 0.5),
    ("GET", "/v1/categories", 3.0, 12, 0.4),
    ("GET", "/v1/categories/{id}/products", 2.2, 48, 0.5),
    ("GET", "/v1/cart", 3.5, 25, 0.5),
    ("POST", "/v1/cart/items", 2.0, 40, 0.5),
    ("DELETE", "/v1/cart/items/{id}", 0.6, 35, 0.5),
    ("POST", "/v1/checkout", 1.0, 420, 0.5),
    ("POST", "/v1/payments", 0.9, 650, 0.45),
    ("GET", "/v1/payments/{uuid}", 0.5, 60, 0.5),
    ("GET", "/v1/search", 6.0, 210, 0.7),
    ("GET", "/v1/reports/{id}/export", 0.4, 2400, 0.6),
    ("GET", "/v1/me", 5.0, 15, 0.4),
    ("POST", "/v1/auth/login", 1.5, 180, 0.4),
    ("POST", "/v1/auth/refresh", 2.5, 22, 0.4),
    ("POST", "/v1/auth/logout", 0.4, 12, 0.4),
    ("GET", "/v1/notifications", 2.5, 28, 0.5),
    ("POST", "/v1/webhooks/stripe", 0.8, 75, 0.5),
    ("GET", "/v2/users/{id}", 4.0, 24, 0.5),
    ("GET", "/v2/users", 2.0, 36, 0.5),
    ("GET", "/v2/orders/{uuid}", 3.0, 30, 0.5),
    ("POST", "/v2/orders", 1.5, 95, 0.5),
    ("GET", "/v2/products", 4.0, 20, 0.5),
    ("GET", "/v2/products/{id}", 5.0, 11, 0.45),
    ("GET", "/v2/search", 3.5, 130, 0.6),
    ("GET", "/v2/recommendations/{id}", 2.0, 340, 0.5),
    ("GET", "/v2/inventory/{id}", 1.5, 26, 0.5),
    ("PUT", "/v2/inventory/{id}", 0.5, 55, 0.5),
    ("GET", "/v2/analytics/summary", 0.6, 780, 0.5),
    ("GET", "/health", 6.0, 2, 0.4),
    ("GET", "/status", 1.0, 4, 0.4),
    ("GET", "/docs", 0.5, 8, 0.4),
    ("GET", "/openapi.json", 0.5, 6, 0.4),
    ("GET", "/v1/files/{id}", 1.0, 150, 0.8),
    ("POST", "/v1/files", 0.5, 900, 0.7),
    ("GET", "/v1/search?q=shoes", 0.8, 190, 0.6),
    ("GET", "/wp-login.php", 0.3, 3, 0.3),
    ("GET", "/.env", 0.2, 2, 0.3),
)
# (weight, country); about 40 countries.
COUNTRIES = (
    (24, "US"), (9, "GB"), (8, "DE"), (6, "IN"), (5, "FR"), (5, "CA"), (4, "BR"), (4, "JP"),
    (3, "NL"), (3, "AU"), (3, "ES"), (3, "IT"), (2, "SE"), (2, "PL"), (2, "MX"), (2, "KR"),
    (2, "SG"), (2, "CH"), (1.5, "IE"), (1.5, "BE"), (1.5, "AT"), (1.5, "DK"), (1.5, "NO"),
    (1.5, "FI"), (1.2, "PT"), (1.2, "CZ"), (1.2, "AR"), (1.2, "CL"), (1.2, "CO"), (1, "ZA"),
    (1, "NG"), (1, "EG"), (1, "TR"), (1, "IL"), (1, "AE"), (1, "ID"), (1, "VN"), (1, "PH"),
    (0.8, "NZ"), (0.8, "UA"), (0.6, "KE"), (0.6, "RO"),
)  # fmt: skip
# (weight, user agent): browsers, apps and scripts, and crawlers.
AGENTS = (
    (20, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36"),
    (12, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4 Safari/605.1.15"),
    (10, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
    (9, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36"),
    (6, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (5, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"),
    (4, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/123.0.0.0 Safari/537.36"),
    (3, "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
    (3, "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"),
    (6, "okhttp/4.12.0"),
    (5, "python-requests/2.31.0"),
    (3, "axios/1.6.8"),
    (2, "Go-http-client/2.0"),
    (2, "PostmanRuntime/7.37.3"),
    (2, "curl/8.5.0"),
    (2, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (1, "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    (1, "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
)  # fmt: skip
USERS = 1_200


@dataclass
class DemoUser:
    ip: str | None
    user_id: str | None
    country: str | None
    agent: str
    host: str
    weight: float


def _weighted(rng: random.Random, pairs):
    weights = [w for w, _ in pairs]
    values = [v for _, v in pairs]
    return lambda: rng.choices(values, weights)[0]


def make_users(rng: random.Random, count: int = USERS) -> list[DemoUser]:
    country = _weighted(rng, COUNTRIES)
    agent = _weighted(rng, AGENTS)
    host = _weighted(rng, [(w, h) for h, w in HOSTS])
    users = []
    for i in range(count):
        privacy = rng.choices((0, 1, 2), (0.75, 0.15, 0.10))[0]
        place = country()
        ip = _public_ip(rng) if privacy == 0 else None
        users.append(
            DemoUser(
                ip=ip,
                user_id=f"user-{i:04d}" if privacy > 0 or rng.random() < 0.5 else None,
                country=place if privacy < 2 else None,
                agent=agent(),
                host=host(),
                weight=rng.paretovariate(1.3),
            )
        )
    return users


def _public_ip(rng: random.Random) -> str:
    while True:
        first = rng.randint(11, 223)
        if first not in (100, 127, 169, 172, 192, 198, 203):
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def hourly_rate(moment: datetime, start: datetime) -> float:
    """Requests an hour: a daily peak mid-afternoon UTC, quieter weekends, slow growth."""
    hour = moment.hour + moment.minute / 60
    daily = 0.35 + 0.65 * (1 + math.cos((hour - 15) / 24 * 2 * math.pi)) / 2
    weekly = 0.6 if moment.weekday() >= 5 else 1.0
    growth = 1 + 0.25 * max(0.0, (moment - start).total_seconds()) / (DAYS * 86400)
    return PER_DAY / 24 * daily * weekly * growth / 0.67


def _status(rng: random.Random, method: str, path: str, is_bot: bool) -> int:
    if path in ("/wp-login.php", "/.env"):
        return 404
    roll = rng.random()
    if roll < 0.004 + (0.02 if "export" in path or "payments" in path else 0):
        return rng.choice((500, 502, 503))
    if roll < 0.015:
        return 401
    if roll < 0.02:
        return 429
    if "{" in path and roll < 0.06:
        return 404
    if roll < 0.075:
        return rng.choice((400, 422))
    if method == "GET" and roll < 0.10:
        return 304
    if path in ("/docs",) and roll < 0.3:
        return 301
    return 201 if method == "POST" else 204 if method == "DELETE" else 200


def _fill(rng: random.Random, path: str) -> str:
    if "{id}" in path:
        path = path.replace("{id}", str(int(rng.paretovariate(0.9) * 10)))
    if "{uuid}" in path:
        path = path.replace("{uuid}", str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    return path


def generate_hour(
    rng: random.Random,
    key_id: int,
    users: list[DemoUser],
    agents: dict,
    start: datetime,
    end: datetime,
    origin: datetime,
    numbers: dict,
) -> list[tuple]:
    """Enriched rows for [start, end) (within one hour), at the demo's rate."""
    span = (end - start).total_seconds()
    expected = hourly_rate(start, origin) * span / 3600
    count = max(0, int(rng.gauss(expected, math.sqrt(expected) + 1)))
    return generate_rows(rng, key_id, users, agents, start, span, count, numbers)


_ENDPOINT_WEIGHTS = [e[2] for e in ENDPOINTS]


def generate_rows(
    rng: random.Random,
    key_id: int,
    users: list[DemoUser],
    agents: dict,
    start: datetime,
    span: float,
    count: int,
    numbers: dict,
) -> list[tuple]:
    """`count` enriched rows spread over `span` seconds from `start`; `numbers` maps
    (key id, user key) to each user's number (server.lake.users.number_users)."""
    cumulative = list(itertools.accumulate(u.weight for u in users))
    chosen_users = rng.choices(users, cum_weights=cumulative, k=count)
    chosen_endpoints = rng.choices(ENDPOINTS, _ENDPOINT_WEIGHTS, k=count)
    rows = []
    for user, (method, path, _w, median, sigma) in zip(chosen_users, chosen_endpoints, strict=True):
        agent = agents[user.agent]
        if agent.is_bot and method != "GET":
            method = "GET"
        status = _status(rng, method, path, agent.is_bot)
        rt = median * math.exp(rng.gauss(0, sigma))
        if status >= 500:
            rt *= 3
        elif status in (401, 404, 429, 304):
            rt = rt / 4
        rows.append(
            build_row(
                key_id,
                start + timedelta(seconds=rng.random() * span),
                user.host,
                _fill(rng, path),
                method,
                status,
                max(0, round(rt)),
                user.ip,
                user.country,
                user.user_id,
                "FastAPI",
                user.agent,
                agent.browser,
                agent.os,
                agent.device,
                agent.is_bot,
                numbers.get((key_id, user_key(user.ip, user.user_id))),
            )
        )
    return rows


def demo_key(conn) -> int | None:
    """The demo key's id (the oldest key marked is_demo), or None before seeding."""
    return conn.execute(
        select(api_keys.c.id).where(api_keys.c.is_demo.is_(True)).order_by(api_keys.c.id).limit(1)
    ).scalar()


def latest_row(conn, key_id: int) -> datetime | None:
    """The newest stored request of the key (hot or in the store's files)."""
    in_files = conn.execute(
        select(func.max(lake_files.c.max_us)).where(lake_files.c.key_id == key_id)
    ).scalar()
    hot = conn.execute(
        select(func.max(requests.c.created_at)).where(requests.c.key_id == key_id)
    ).scalar()
    newest = max((v for v in (in_files, hot) if v is not None), default=None)
    return None if newest is None else datetime.fromtimestamp(newest / 1_000_000, UTC)


def seed_demo(
    engine,
    *,
    days: int = DAYS,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 7,
) -> tuple[int, int]:
    """Create the demo key and its data, or top it up to `now`; returns (key id, rows added)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    origin = now - timedelta(days=days)
    with engine.begin() as conn:
        key_id = demo_key(conn)
        if key_id is None:
            key_id, _plaintext = create_key(conn, is_demo=True)  # nobody needs the key itself
            since = origin
        else:
            since = latest_row(conn, key_id) or origin
            since = max(since + timedelta(seconds=1), origin)
    rng = random.Random(seed)
    users = make_users(rng)
    agents = useragent.resolve(engine, {a for _w, a in AGENTS})
    numbers = number_users(engine, {(key_id, user_key(u.ip, u.user_id)) for u in users})
    hours = []
    cursor = since
    while cursor < now:
        hour_end = min(cursor.replace(minute=0, second=0) + timedelta(hours=1), now)
        hours.append((cursor, hour_end))
        cursor = hour_end
    rng = random.Random(f"{seed}-{since.isoformat()}")
    added = 0
    chunk: list[tuple] = []
    for done, (start, end) in enumerate(hours, start=1):
        chunk.extend(generate_hour(rng, key_id, users, agents, start, end, origin, numbers))
        if len(chunk) >= 20_000 or done == len(hours):
            store_enriched(engine, chunk)
            added += len(chunk)
            chunk = []
        if progress:
            progress(done, len(hours))
    from worker.export import flush

    flush(engine)  # the demo's history goes into the columnar store at once
    return key_id, added


def _progress_bar(label: str):
    """A click progress bar fed by seed_demo's (done, total) callback."""
    import click

    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            state["bar"].__enter__()
        bar = state["bar"]
        bar.update(done - bar.pos)
        if done == total:
            bar.__exit__(None, None, None)

    return update


@click.command("seed-demo")
@click.option("--days", default=DAYS, show_default=True, help="Days of traffic to generate.")
@click.option(
    "--base-url",
    default=lambda: f"http://127.0.0.1:{os.environ.get('PORT', '8000')}",
    show_default="http://127.0.0.1:$PORT",
    help="Where the workers reach this server: the demo's monitors check it.",
)
def seed_demo_command(days: int, base_url: str) -> None:
    """Create the demo key's data (/dashboard/demo), or top it up to now."""
    from server.db import get_engine

    key_id, added = seed_demo(get_engine(), days=days, progress=_progress_bar("demo traffic"))
    click.echo(f"demo key id={key_id}: {added:,} requests added")
    checks = seed_demo_monitors(get_engine(), base_url)
    click.echo(f"demo monitors of {base_url}: {checks:,} checks added")


def seed_on_start(database_url: str) -> None:
    """`make run`: seed the demo on the first start, top it up on later ones."""
    from server.db import init_engine

    engine = init_engine(database_url)
    with engine.connect() as conn:
        first = demo_key(conn) is None
    label = "seeding the demo (first start)" if first else "topping up the demo"
    key_id, added = seed_demo(engine, progress=_progress_bar(label) if first else None)
    log.info("demo key id=%s: %s requests added", key_id, f"{added:,}")


# --- Demo monitors: the server's own endpoints, with a month of checks ---------------------

# (path, method): what the uptime checks of the demo key request on this very server.
DEMO_MONITORS = (("/api/health", "GET"), ("/api/openapi.json", "HEAD"))
MONITOR_DAYS = 30
# (days ago the outage began, its length in minutes, what the checks saw), per monitor.
OUTAGES = (
    ((9.3, 25, (None, "connection refused")), (2.6, 10, (503, None))),
    ((9.3, 25, (None, "connection refused")),),
)


def seed_demo_monitors(
    engine, base_url: str, *, now: datetime | None = None, interval: int | None = None
) -> int:
    """Give the demo key monitors of this server (`base_url`) and their history up to now.

    The history is generated (fast answers, two short outages) on the rounds the uptime
    checks use, so the real checks that follow, against the server itself, add to it
    without clashing. Later starts top it up and point the monitors at `base_url` again
    (the port may have changed). Returns the checks added.
    """
    from server.config import current_config
    from server.models import monitors

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    interval = interval or current_config().MONITOR_INTERVAL_SECONDS
    base_url = base_url.rstrip("/")
    added = 0
    with engine.begin() as conn:
        key_id = demo_key(conn)
        if key_id is None:
            return 0
        for index, (path, method) in enumerate(DEMO_MONITORS):
            monitor_id = _demo_monitor(conn, monitors, key_id, index, base_url + path, method, now)
            added += _top_up_checks(conn, monitor_id, OUTAGES[index], now, interval, seed=index)
    log.info("demo monitors of %s: %s checks added", base_url, f"{added:,}")
    return added


def _demo_monitor(conn, monitors, key_id: int, index: int, url: str, method: str, now) -> int:
    """The demo key's index-th monitor, created or pointed at `url`."""
    from sqlalchemy import insert, update

    existing = conn.execute(
        select(monitors.c.id, monitors.c.url)
        .where(monitors.c.key_id == key_id)
        .order_by(monitors.c.id)
    ).all()
    if index < len(existing):
        monitor_id, old_url = existing[index]
        if old_url != url:
            conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(url=url))
        return monitor_id
    created = now - timedelta(days=MONITOR_DAYS)
    return conn.execute(
        insert(monitors)
        .values(key_id=key_id, url=url, method=method, created_at=created)
        .returning(monitors.c.id)
    ).scalar_one()


def _top_up_checks(conn, monitor_id: int, outages, now: datetime, interval: int, seed: int) -> int:
    """Generated checks for every round since the last one stored (or MONITOR_DAYS ago)."""
    from server.db import insert_ignoring_conflicts
    from server.models import pings

    latest = as_utc(
        conn.execute(
            select(func.max(pings.c.scheduled_at)).where(pings.c.monitor_id == monitor_id)
        ).scalar()
    )
    start = max(latest or now - timedelta(days=MONITOR_DAYS), now - timedelta(days=MONITOR_DAYS))
    first = (int(start.timestamp()) // interval + 1) * interval
    rng = random.Random(f"monitor-{seed}-{first}")
    down = [
        (now - timedelta(days=days), now - timedelta(days=days) + timedelta(minutes=minutes), seen)
        for days, minutes, seen in outages
    ]
    rows = []
    for round_ts in range(first, int(now.timestamp()) + 1, interval):
        moment = datetime.fromtimestamp(round_ts, UTC)
        status, error = next((seen for a, b, seen in down if a <= moment < b), (200, None))
        rows.append(
            {
                "monitor_id": monitor_id,
                "scheduled_at": moment,
                "created_at": moment + timedelta(milliseconds=rng.randint(5, 400)),
                "status": status,
                "response_time": None if status is None else round(rng.lognormvariate(1.8, 0.5)),
                "error": error,
            }
        )
    if rows:
        statement = insert_ignoring_conflicts(conn, pings, ["monitor_id", "scheduled_at"])
        conn.execute(statement, rows)
    return len(rows)
