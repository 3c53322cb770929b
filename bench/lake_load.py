"""Load realistic requests straight into the columnar store (files + catalog), fast.

Generating tens of millions of rows through HTTP takes hours here, so benchmarks write
them the way the export job does: one key's month at a time, sorted by time, as Parquet
files published in the catalog. The shape: API paths under ~40 templated endpoints with
numeric and hex ids (tens of thousands of distinct raw paths, some with query strings),
5,000 users (four in five known by IP, the rest by user id only), 50 countries, real user
agents, a daily rhythm, log-normal response times and realistic status codes.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

from server.demo import traffic
from server.lake import catalog, engine
from server.lake.catalog import LakeFile
from server.lake.compaction import current_month, write_summary
from server.lake.engine import sql_str
from server.lake.layout import BY_DATASET, DETAILS, HOSTNAMES_SQL, PARQUET_OPTIONS, row_order
from server.lake.storage import file_name, get_storage, staging_file
from server.rules import api_version, template_path, user_key

# The traffic model is the demo's (server.demo.traffic): the same endpoints, hosts,
# statuses, countries, agents and users; written here in SQL, fast.
USERS = 5_000
COUNTRIES, AGENTS, ENDPOINTS, HOSTS, STATUSES = (
    traffic.COUNTRIES, traffic.AGENTS, traffic.ENDPOINTS, traffic.HOSTS, traffic.STATUSES,
)  # fmt: skip
SLOTS = 1000


def _slots(weights) -> list[int]:
    """Index per slot (SLOTS in all), so a weighted choice is an equi-join on a slot."""
    total = sum(weights)
    out = []
    for index, w in enumerate(weights):
        out += [index] * round(w / total * SLOTS)
    return (out + [len(weights) - 1] * SLOTS)[:SLOTS]


def _users(cur, db, key_id: int) -> None:
    from server.lake.agents import parse
    from server.lake.users import number_users

    rows = []
    for i in range(USERS):
        agent = AGENTS[(i * 7) % len(AGENTS)]
        browser, os_family, device, bot = parse(agent)
        ip = f"{11 + i % 200}.{(i // 200) % 250}.{(i * 13) % 250}.{1 + i % 249}" if i % 5 else None
        user_id = f"user-{i}" if i % 3 == 0 or ip is None else None
        country = COUNTRIES[min(len(COUNTRIES) - 1, int(len(COUNTRIES) * (i / USERS) ** 2))]
        host = HOSTS[0][0] if i % 10 < 7 else HOSTS[1][0] if i % 10 < 9 else HOSTS[2][0]
        rows.append((i, ip, user_id, user_key(ip, user_id), country, agent, browser,
                     os_family, device, bot, host))  # fmt: skip
    numbers = number_users(db, {(key_id, r[3]) for r in rows})
    rows = [(*r[:3], numbers[(key_id, r[3])], *r[4:]) for r in rows]
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE gen_users (u INTEGER, ip VARCHAR, user_id VARCHAR, "
        "ux BIGINT, location VARCHAR, agent VARCHAR, browser VARCHAR, os VARCHAR, "
        "device VARCHAR, bot BOOLEAN, host VARCHAR)"
    )
    cur.executemany("INSERT INTO gen_users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _lookups(cur) -> None:
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE gen_endpoints (e INTEGER, method VARCHAR, "
        "template VARCHAR, endpoint VARCHAR, version VARCHAR, median DOUBLE, sigma DOUBLE)"
    )
    for e, (method, template, _w, median, sigma) in enumerate(ENDPOINTS):
        sample = template.replace("{id}", "123").replace("{hex}", "0123456789abcdef" * 2)
        endpoint = template_path(sample)
        assert endpoint == template.replace("{hex}", "{id}"), (template, endpoint)
        cur.execute(
            "INSERT INTO gen_endpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
            [e, method, template, endpoint, api_version(sample), median, sigma],
        )
    cur.execute("CREATE OR REPLACE TEMP TABLE gen_slots (slot INTEGER, e INTEGER, s INTEGER)")
    endpoint_slots = _slots([w for _m, _t, w, _md, _s in ENDPOINTS])
    status_slots = _slots([w for _code, w in STATUSES])
    cur.executemany(
        "INSERT INTO gen_slots VALUES (?, ?, ?)",
        [(i, endpoint_slots[i], STATUSES[status_slots[i]][0]) for i in range(SLOTS)],
    )


# With `extras` (bench/dashboard.py --errors): consumers, error groups and exceptions.
CONSUMERS = 10_000
CONSUMER_GROUPS = ("free", "pro", "team", "enterprise")
ERROR_GROUPS = 300
EXTRA_FAILURES = 200  # one row in this many more fails (500), beside the model's 1.5 % 5xx


def _extras_sql(key_id: int, seed: int, extras: bool) -> str:
    """The optional columns: consumer (four rows in five), its group, and for a row that
    failed with a 5xx its error group (skewed: a few groups hold most occurrences) and
    `detail` (its id); NULL every one without `extras`."""
    if not extras:
        return ("NULL::VARCHAR AS consumer, NULL::VARCHAR AS consumer_group, "
                "NULL::BIGINT AS error_group, NULL::BIGINT AS detail")  # fmt: skip
    groups = "[" + ", ".join(f"'{g}'" for g in CONSUMER_GROUPS) + "]"
    number = f"(h // 7) % {CONSUMERS}"
    failed = "CAST(p.status AS INTEGER) >= 500"
    group = error_group_id(key_id, f"CAST(floor(pow(z2, 3) * {ERROR_GROUPS}) AS INTEGER)")
    return f"""
      CASE WHEN h % 5 <> 0 THEN 'cus_' || CAST({number} AS VARCHAR) END AS consumer,
      CASE WHEN h % 5 <> 0 THEN {groups}[1 + CAST({number} AS INTEGER) % 4] END
        AS consumer_group,
      CASE WHEN {failed} THEN {group} END AS error_group,
      CASE WHEN {failed} THEN ({key_id}::BIGINT << 40) + {seed}::BIGINT * 100000000 + i END
        AS detail"""


def error_group_id(key_id: int, number: str) -> str:
    """The id of a key's generated error group `number` (0 .. ERROR_GROUPS - 1)."""
    return f"({key_id}::BIGINT * 1000 + {number})"


def _month_rows_sql(
    key_id: int, start_us: int, span_us: int, count: int, seed: int, extras: bool = False
) -> str:
    """SELECT of `count` generated rows in [start, start + span), in the layout's columns."""
    r = lambda k: f"((hash(i * 7919 + {seed * 31 + k}) % 1000003) / 1000003.0)"  # noqa: E731
    status = "s2.s"
    if extras:
        status = (
            f"CASE WHEN hash(i * 104729 + {seed}) % {EXTRA_FAILURES} = 0 THEN 500 ELSE s2.s END"
        )
    return f"""
    WITH base AS (
      SELECT i,
        {start_us} + CAST({r(1)} * {span_us} AS BIGINT) AS ts_us,
        CAST(floor(pow({r(2)}, 1.7) * {USERS}) AS INTEGER) AS u,
        CAST(floor({r(3)} * {SLOTS}) AS INTEGER) AS slot_e,
        CAST(floor({r(4)} * {SLOTS}) AS INTEGER) AS slot_s,
        {r(5)} AS z1, {r(6)} AS z2, {r(7)} AS q, hash(i * 104729 + {seed}) AS h
      FROM range({count}) t(i)
    ), picked AS (
      SELECT b.*, e.method, e.template, e.endpoint, e.version, e.median, e.sigma,
        {status} AS status
      FROM base b
      JOIN gen_slots s1 ON s1.slot = b.slot_e
      JOIN gen_endpoints e ON e.e = s1.e
      JOIN gen_slots s2 ON s2.slot = b.slot_s
    )
    SELECT
      ({key_id}::BIGINT << 40) + {seed}::BIGINT * 100000000 + i AS id,
      {key_id}::INTEGER AS key_id,
      make_timestamp(ts_us)::TIMESTAMPTZ AS created_at,
      CAST(ts_us // 3600000000 AS INTEGER) AS hour,
      us.host AS hostname,
      p.method,
      replace(replace(p.template, '{{id}}', CAST(h % 4000 AS VARCHAR)),
              '{{hex}}', md5(CAST(h % 60000 AS VARCHAR))) ||
        CASE WHEN q < 0.08 THEN '?page=' || CAST(CAST(q * 100 AS INTEGER) AS VARCHAR) ELSE '' END
        AS path,
      p.endpoint, p.method || ' ' || p.endpoint AS route, p.version,
      CAST(p.status AS SMALLINT) AS status,
      CAST(greatest(0, round(p.median * exp(p.sigma * sqrt(-2 * ln(greatest(z1, 1e-9)))
           * cos(2 * pi() * z2)) * CASE WHEN p.status >= 500 THEN 3 ELSE 1 END)) AS INTEGER)
        AS response_time,
      us.ip AS ip_address, us.location, us.user_id, us.ux,
      us.agent AS user_agent, us.browser, us.os, us.device, us.bot,
      'FastAPI' AS framework,
      {_extras_sql(key_id, seed, extras)}
    FROM picked p JOIN gen_users us ON us.u = p.u
    """


def load_key(
    db, settings, key_id: int, rows: int, now: datetime, progress=None, extras: bool = False
) -> int:
    """Write `rows` requests for `key_id` over the year before `now`; returns files written.

    Months get rows in proportion to their length; files hold up to LAKE_FILE_ROWS rows.
    With `extras`, rows name consumers and failures carry exceptions (_extras_sql), whose
    details go in the details dataset's files, and the key's error groups and consumers
    are in their tables.
    """
    if extras:
        _directory(db, key_id, now)
    storage = get_storage(settings)
    start = (now - timedelta(days=365)).replace(minute=0, second=0, microsecond=0)
    months = []
    cursor = start
    while cursor < now:
        nxt = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0)
        end = min(nxt, now)
        months.append((cursor, end))
        cursor = end
    total_span = (now - start).total_seconds()
    written, done, began = 0, 0, time.monotonic()
    with engine.cursor(settings) as cur:
        _users(cur, db, key_id)
        _lookups(cur)
        for index, (low, high) in enumerate(months):
            span = (high - low).total_seconds()
            count = rows - done if index == len(months) - 1 else round(rows * span / total_span)
            parts = max(1, math.ceil(count / settings.LAKE_FILE_ROWS))
            month = low.year * 100 + low.month
            for part in range(parts):
                share = count // parts + (1 if part < count % parts else 0)
                lo_us = int(low.timestamp() * 1e6) + int(span * 1e6 * part / parts)
                width = int(span * 1e6 / parts)
                local = staging_file(storage, f"load-k{key_id}-{month}")
                sql = _month_rows_sql(key_id, lo_us, width, share, index * 16 + part, extras)
                closed = month < current_month()
                cur.execute(
                    f"COPY ({sql} ORDER BY {row_order(closed)}) TO {sql_str(str(local))} "
                    f"({PARQUET_OPTIONS})"
                )
                n, a, b, hosts = cur.execute(
                    "SELECT count(*), epoch_us(min(created_at)), epoch_us(max(created_at)), "
                    f"{HOSTNAMES_SQL} FROM read_parquet({sql_str(str(local))})"
                ).fetchone()
                name = file_name(key_id, month)
                # Closed months get their summaries, as compaction gives them.
                summary = None
                if closed:
                    summary = write_summary(cur, storage, str(local), name)
                published = []
                if extras:  # from the file, before it moves into the store
                    published.append(_details_file(cur, storage, str(local), key_id, month))
                size = storage.put(local, name)
                published.append(LakeFile(None, key_id, month, name, n, size, a, b,
                                          tuple(hosts), summary))  # fmt: skip
                with db.begin() as conn:
                    catalog.ensure_state(conn)
                    for new in published:
                        catalog.publish(conn, [new], dataset=BY_DATASET[new.dataset])
                written += 1
                done += n
                if progress:
                    progress(
                        f"key {key_id}: {done:,}/{rows:,} rows ({time.monotonic() - began:.0f} s)"
                    )
    return written


def _details_file(cur, storage, requests_file: str, key_id: int, month: int) -> LakeFile:
    """The details (exception type, message and stack) of a requests file's failed rows."""
    local = staging_file(storage, f"load-d{key_id}-{month}")
    number = f"(error_group - {key_id}::BIGINT * 1000)"
    types = "['app.errors.Timeout', 'KeyError', 'app.db.Deadlock', 'ValueError']"
    cur.execute(
        f"COPY (SELECT detail AS id, key_id, created_at, hour, detail, route, status, "
        f"error_group, {types}[1 + {number} % 4] AS exception_type, "
        f"'order ' || CAST(id % 100000 AS VARCHAR) || ' failed in step ' "
        f"|| CAST({number} AS VARCHAR) AS exception_message, "
        f'\'[["app/main.py",40,"handler",true],["app/orders.py",\' '
        f"|| CAST(100 + {number} AS VARCHAR) || ',\"load\",true]]' AS stack, "
        f"NULL::VARCHAR AS validation FROM read_parquet({sql_str(requests_file)}) "
        f"WHERE detail IS NOT NULL ORDER BY created_at, id) TO {sql_str(str(local))} "
        f"({PARQUET_OPTIONS})"
    )
    n, a, b = cur.execute(
        "SELECT count(*), coalesce(epoch_us(min(created_at)), 0), "
        f"coalesce(epoch_us(max(created_at)), 0) FROM read_parquet({sql_str(str(local))})"
    ).fetchone()
    name = file_name(key_id, month, DETAILS.folder)
    size = storage.put(local, name)
    return LakeFile(None, key_id, month, name, n, size, a, b, dataset=DETAILS.name)


def _directory(db, key_id: int, now: datetime) -> None:
    """The key's generated error groups and consumers, in their tables."""
    from server.models import consumers, error_groups

    first = int((now - timedelta(days=365)).timestamp() * 1e6)
    last = int(now.timestamp() * 1e6)
    types = ("app.errors.Timeout", "KeyError", "app.db.Deadlock", "ValueError")
    groups = [
        {"id": key_id * 1000 + n, "key_id": key_id, "fingerprint": f"{n:064x}",
         "type": types[n % 4], "message": f"order {{n}} failed in step {n}",
         "frame": f"app/orders.py:{100 + n} in load", "route": "GET /v1/orders/{id}",
         "first_seen": first, "last_seen": last, "state": "open", "regressions": 0}
        for n in range(ERROR_GROUPS)
    ]  # fmt: skip
    people = [
        {"key_id": key_id, "consumer_id": f"cus_{n}", "name": f"Customer {n}",
         "consumer_group": CONSUMER_GROUPS[n % 4], "first_seen": first, "last_seen": last}
        for n in range(CONSUMERS)
    ]  # fmt: skip
    with db.begin() as conn:
        conn.execute(error_groups.insert(), groups)
        conn.execute(consumers.insert(), people)


def independent_now() -> datetime:
    return datetime.now(UTC)
