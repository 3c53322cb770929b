"""The demo key's data: ~90 days of realistic traffic (server.demo.traffic), through the
same writers as real rows.

Rows are generated ready to store (the country given directly, user agents resolved
through server.lake.agents) and written into the hot table as a batch is, one
transaction per chunk, then exported to the columnar store. Running it again tops the
demo up to the current time, so /dashboard/demo stays live.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import func, select

from server import queue
from server.db import as_utc
from server.demo import extras, traffic
from server.ingest.capture import extras_of
from server.ingest.enrich import with_extras
from server.ingest.masking import DEFAULT
from server.ingest.store import write
from server.keys.api_keys import create_key
from server.lake import agents as agent_table
from server.lake.export import flush, run_export
from server.lake.layout import GIVEN, stored_rows
from server.lake.models import lake_files, requests
from server.lake.users import number_users
from server.models import api_keys
from server.rules import epoch_micros, user_key

log = logging.getLogger(__name__)
DAYS = 90
PER_DAY = 1_200
USERS = 1_200


@dataclass
class DemoUser:
    ip: str | None
    user_id: str | None
    country: str
    agent: str
    host: str
    weight: float


def make_users(rng: random.Random, count: int = USERS) -> list[DemoUser]:
    """The traffic model's users (server.demo.traffic.user), each with a share of the
    traffic: a few call a lot, most a little."""
    return [
        DemoUser(**vars(traffic.user(i, count)), weight=rng.paretovariate(1.3))
        for i in range(count)
    ]


def hourly_rate(moment: datetime, start: datetime) -> float:
    """Requests an hour: a daily peak mid-afternoon UTC, quieter weekends, slow growth."""
    hour = moment.hour + moment.minute / 60
    daily = 0.35 + 0.65 * (1 + math.cos((hour - 15) / 24 * 2 * math.pi)) / 2
    weekly = 0.6 if moment.weekday() >= 5 else 1.0
    growth = 1 + 0.25 * max(0.0, (moment - start).total_seconds()) / (DAYS * 86400)
    return PER_DAY / 24 * daily * weekly * growth / 0.67


_ENDPOINT_WEIGHTS = [e[2] for e in traffic.ENDPOINTS]
_STATUS_CODES = [code for code, _w in traffic.STATUSES]
_STATUS_WEIGHTS = [w for _code, w in traffic.STATUSES]


def generate_hour(
    rng: random.Random,
    key_id: int,
    users: list[DemoUser],
    agents: dict,
    start: datetime,
    end: datetime,
    origin: datetime,
    numbers: dict,
) -> tuple[list[tuple], list]:
    """Rows ready to store for [start, end) (within one hour), at the demo's rate, and
    each one's optional fields (generate_rows)."""
    span = (end - start).total_seconds()
    expected = hourly_rate(start, origin) * span / 3600
    count = max(0, int(rng.gauss(expected, math.sqrt(expected) + 1)))
    return generate_rows(rng, key_id, users, agents, start, span, count, numbers)


def generate_rows(
    rng: random.Random,
    key_id: int,
    users: list[DemoUser],
    agents: dict,
    start: datetime,
    span: float,
    count: int,
    numbers: dict,
) -> tuple[list[tuple], list]:
    """`count` rows ready to store, spread over `span` seconds from `start`, and each
    one's optional fields as our client sends them (server.demo.extras: its consumer, and
    a failure's exception or validation errors with its capture), or None; `numbers`
    maps (key id, user key) to each user's number (server.lake.users.number_users)."""
    cumulative = list(itertools.accumulate(u.weight for u in users))
    chosen_users = rng.choices(users, cum_weights=cumulative, k=count)
    chosen_endpoints = rng.choices(traffic.ENDPOINTS, _ENDPOINT_WEIGHTS, k=count)
    statuses = rng.choices(_STATUS_CODES, _STATUS_WEIGHTS, k=count)
    given = {name: [] for name in GIVEN if name not in _LINKED}
    sent = []
    for user, (method, template, _w, median, sigma), status in zip(
        chosen_users, chosen_endpoints, statuses, strict=True
    ):
        agent = agents[user.agent]
        if agent.is_bot and method != "GET":
            method = "GET"
        status, found = extras.failure(rng, f"{method} {template}", status)
        consumer = extras.consumer_of(user.user_id)
        if consumer:
            found["consumer"] = consumer
        sent.append(found or None)
        rt = median * math.exp(rng.gauss(0, sigma))
        if status >= 500:
            rt *= 3
        elif status in (401, 404, 429, 304, 422):
            rt = rt / 4
        moment = start + timedelta(seconds=rng.random() * span)
        path = traffic.fill(template, int(rng.paretovariate(0.9) * 10), rng.getrandbits(16))
        for name, value in (
            ("created_at", epoch_micros(moment)), ("hostname", user.host), ("method", method),
            ("path", path), ("status", status), ("response_time", max(0, round(rt))),
            ("ip_address", user.ip), ("location", user.country), ("user_id", user.user_id),
            ("ux", numbers.get((key_id, user_key(user.ip, user.user_id)))),
            ("user_agent", user.agent), ("browser", agent.browser), ("os", agent.os),
            ("device", agent.device), ("bot", bool(agent.is_bot)),
        ):  # fmt: skip
            given[name].append(value)
    given["key_id"] = [key_id] * count
    given["framework"] = ["FastAPI"] * count
    for name in _LINKED:  # filled from the optional fields when stored (seed_demo)
        given[name] = [None] * count
    return stored_rows(given), sent


# The columns a row's optional fields fill (server.ingest.enrich.with_extras).
_LINKED = ("consumer", "consumer_group", "error_group", "detail")


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
    agents = agent_table.resolve(engine, set(traffic.AGENTS))
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
    sent: list = []
    for done, (start, end) in enumerate(hours, start=1):
        rows, found = generate_hour(rng, key_id, users, agents, start, end, origin, numbers)
        chunk += rows
        sent += found
        if len(chunk) >= 20_000 or done == len(hours):
            # Checked and masked as ingest does, then linked: groups, consumers, details.
            checked = [extras_of(e, DEFAULT) if e else None for e in sent]
            stored = with_extras(engine, key_id, chunk, checked)
            with engine.begin() as conn:
                write(conn, stored)
            queue.ask(run_export)
            added += len(chunk)
            chunk, sent = [], []
        if progress:
            progress(done, len(hours))
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
