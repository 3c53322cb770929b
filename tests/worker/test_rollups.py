"""Rollups: histogram buckets, path templates, folding and exact upserts on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from server.auth import lookup_key
from server.models import (
    HIST_COLUMNS,
    rollup_endpoints,
    rollup_traffic,
    rollup_user_counts,
    rollup_users,
)
from worker.enrich import EnrichedRow
from worker.rollups import (
    ANY_BOT,
    ANY_HOST,
    DAY,
    GRAIN_DAY,
    GRAIN_HOUR,
    GRAIN_MONTH,
    HIST_LOWER,
    api_version,
    epoch_seconds,
    inbox_rows,
    rt_bucket,
    template_path,
    user_key,
    write_rollups,
)


def row(
    ts="2026-03-04T10:15:00+00:00",
    path="/v1/users/42",
    status=200,
    rt=20,
    ip="1.2.3.4",
    user_id=None,
    host="api.example.com",
    bot=False,
    location="GB",
    method="GET",
    key_id=1,
):
    return EnrichedRow(
        key_id,
        datetime.fromisoformat(ts),
        host,
        path,
        method,
        status,
        rt,
        ip,
        location,
        None,
        user_id,
        "FastAPI",
        "Chrome",
        "Windows",
        "bot" if bot else "desktop",
        bot,
    )


def test_histogram_buckets_are_exact_below_16_ms_and_grow_after():
    assert [rt_bucket(v) for v in range(16)] == list(range(16))
    assert rt_bucket(16) == 16
    assert HIST_LOWER[17] == 22  # ceil(16 * 1.33)
    assert rt_bucket(21) == 16
    assert rt_bucket(22) == 17
    assert rt_bucket(10**9) == 63
    assert list(HIST_LOWER) == sorted(set(HIST_LOWER))


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/users/123", "/v1/users/{id}"),
        ("/v1/users/123?x=1", "/v1/users/{id}"),
        ("/orders/550e8400-e29b-41d4-a716-446655440000/items", "/orders/{id}/items"),
        ("/files/5f2b9c0e8a1d4e7f", "/files/{id}"),
        ("/v2/health", "/v2/health"),
        ("/", "/"),
        ("?q=1", "/"),
    ],
)
def test_template_path(path, template):
    assert template_path(path) == template


def test_api_version_and_user_key():
    assert api_version("/v1/users/1") == "v1"
    assert api_version("/api/V2/x?y=/v3/") == "v2"
    assert api_version("/health") == ""
    assert user_key("1.2.3.4", "u1") == "1.2.3.4"
    assert user_key(None, "u1") == "u1"
    assert user_key(None, None) == ""


def _rows(conn, table, key_id, *columns, **where):
    query = select(*(table.c[c] for c in columns)).where(table.c.key_id == key_id)
    query = query.where(*(table.c[k] == v for k, v in where.items()))
    return [tuple(r) for r in conn.execute(query)]


def test_rollups_count_by_hour_day_and_month(stack):
    key_id = 997
    write_rollups(
        stack.engine,
        [
            row(rt=5, key_id=key_id),
            row(rt=30, ts="2026-03-04T10:59:59+00:00", status=404, key_id=key_id),
            row(rt=7, ts="2026-03-04T11:00:00+00:00", path="/v1/users/9?x=1", key_id=key_id),
        ],
    )
    day = int(datetime(2026, 3, 4, tzinfo=UTC).timestamp())
    month = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    hour10 = day + 10 * 3600
    host = "api.example.com"
    traffic = ("n", "rt_sum", "h05", "h07", "hr10", "hr11")
    with stack.engine.connect() as conn:
        one = dict(grain=GRAIN_HOUR, bucket=hour10, hostname=host, status=200, bot=0)
        assert _rows(conn, rollup_traffic, key_id, *traffic, **one) == [(1, 5, 1, 0, None, None)]
        daily = dict(grain=GRAIN_DAY, bucket=day, hostname=host, status=200, bot=0)
        assert _rows(conn, rollup_traffic, key_id, *traffic, **daily) == [(2, 12, 1, 1, 1, 1)]
        # Monthly rows: counts and hours of day, no histogram.
        monthly = dict(grain=GRAIN_MONTH, bucket=month, hostname=host, status=200, bot=0)
        assert _rows(conn, rollup_traffic, key_id, *traffic, **monthly) == [
            (2, 12, None, None, 1, 1)
        ]
        endpoint = ("n", "rt_sum", "n_query", "n_ids", "h05")
        at = dict(hostname=host, method="GET", endpoint="/v1/users/{id}")
        assert _rows(conn, rollup_endpoints, key_id, *endpoint, grain=GRAIN_MONTH, bucket=month,
                     status=404, **at) == [(1, 30, 0, 1, None)]  # fmt: skip
        assert _rows(conn, rollup_endpoints, key_id, *endpoint, grain=GRAIN_DAY, bucket=day,
                     status=200, **at) == [(2, 12, 1, 2, 1)]  # fmt: skip
        # Hourly dimension rows carry no histogram.
        assert _rows(conn, rollup_endpoints, key_id, "h05", grain=GRAIN_HOUR, bucket=hour10,
                     status=200, **at) == [(None,)]  # fmt: skip
        # Each user under its own hostname/bot and the "any" variants, per day and month.
        last = day + 11 * 3600
        users = _rows(
            conn, rollup_users, key_id, "grain", "hostname", "bot", "bucket", "user_key", "n",
            "n_404", "last_seen", "location",
        )  # fmt: skip
        assert sorted(users) == sorted(
            (grain, *variant, bucket, "1.2.3.4", 3, 1, last, "GB")
            for grain, bucket in ((GRAIN_DAY, day), (GRAIN_MONTH, month))
            for variant in ((host, 0), (ANY_HOST, ANY_BOT))
        )
        from server.models import rollup_inbox

        assert _rows(conn, rollup_inbox, key_id, "id") == []


def _sum(conn, table, column, **where):
    query = select(func.sum(table.c[column])).where(*(table.c[k] == v for k, v in where.items()))
    return conn.execute(query).scalar()


def _rollup_engine(stack):
    return stack.engine


def test_upserts_add_up_and_concurrent_writers_stay_exact(stack):
    engine = _rollup_engine(stack)
    rows = [row(rt=i, ip=f"10.0.0.{i % 3}", key_id=999) for i in range(40)]
    write_rollups(engine, rows[:10])
    write_rollups(engine, rows[10:20])

    errors = []

    def writer(chunk):
        try:
            write_rollups(engine, chunk)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(rows[i : i + 5],)) for i in (20, 25, 30, 35)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with engine.connect() as conn:
        assert _sum(conn, rollup_traffic, "n", key_id=999, grain=GRAIN_DAY) == 40
        assert _sum(conn, rollup_traffic, "rt_sum", key_id=999, grain=GRAIN_HOUR) == sum(range(40))
        assert _sum(conn, rollup_traffic, "h05", key_id=999, grain=GRAIN_DAY) == 1
        hist_total = sum(
            _sum(conn, rollup_traffic, c, key_id=999, grain=GRAIN_DAY) or 0 for c in HIST_COLUMNS
        )
        assert hist_total == 40
        assert _sum(conn, rollup_endpoints, "n_ids", key_id=999, grain=GRAIN_DAY) == 40
        users = conn.execute(
            select(rollup_users.c.user_key, rollup_users.c.n).where(
                rollup_users.c.key_id == 999,
                rollup_users.c.grain == GRAIN_DAY,
                rollup_users.c.hostname == ANY_HOST,
                rollup_users.c.bot == ANY_BOT,
            )
        ).all()
        assert sorted(users) == [("10.0.0.0", 14), ("10.0.0.1", 13), ("10.0.0.2", 13)]
        counted = conn.execute(
            select(rollup_user_counts.c.users, rollup_user_counts.c.users_ok).where(
                rollup_user_counts.c.key_id == 999,
                rollup_user_counts.c.hostname == ANY_HOST,
                rollup_user_counts.c.bot == ANY_BOT,
            )
        ).all()
        assert [tuple(c) for c in counted] == [(3, 3)]


def test_ingest_through_the_api_writes_rollups(stack):
    key = stack.new_key()
    now = datetime.now(UTC)
    rows = [
        {
            "hostname": "h",
            "ip_address": None,
            "path": f"/v1/items/{i}",
            "user_agent": "curl/8.0",
            "method": "GET",
            "status": 200 if i % 4 else 500,
            "response_time": 10 + i,
            "user_id": f"user{i % 2}",
            "created_at": now.isoformat(),
        }
        for i in range(8)
    ]
    response = stack.client.post(
        "/api/log-request", json={"api_key": key, "privacy_level": 2, "requests": rows}
    )
    assert response.status_code == 201, response.get_json()
    stack.process_jobs()
    stack.process_jobs()  # a second run finds nothing left to add
    day = int(now.timestamp()) // DAY * DAY
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        totals = conn.execute(
            select(rollup_traffic.c.status, func.sum(rollup_traffic.c.n))
            .where(rollup_traffic.c.grain == GRAIN_DAY, rollup_traffic.c.bucket == day)
            .where(rollup_traffic.c.key_id == key_id)
            .group_by(rollup_traffic.c.status)
            .order_by(rollup_traffic.c.status)
        ).all()
        assert [tuple(t) for t in totals] == [(200, 6), (500, 2)]
        users = conn.execute(
            select(rollup_user_counts.c.users).where(
                rollup_user_counts.c.key_id == key_id,
                rollup_user_counts.c.hostname == ANY_HOST,
                rollup_user_counts.c.bot == ANY_BOT,
            )
        ).scalar()
        assert users == 2  # privacy level 2: no IP, counted by user id


def test_users_404_only_then_not(stack):
    """users_ok counts a user once, when the first non-404 request arrives (any batch)."""
    engine = stack.engine
    write_rollups(engine, [row(status=404, key_id=998), row(status=404, key_id=998)])
    write_rollups(engine, [row(status=200, key_id=998), row(status=404, key_id=998)])
    write_rollups(engine, [row(status=200, key_id=998, ip="5.6.7.8")])
    with engine.connect() as conn:
        counted = conn.execute(
            select(rollup_user_counts.c.users, rollup_user_counts.c.users_ok).where(
                rollup_user_counts.c.key_id == 998,
                rollup_user_counts.c.hostname == ANY_HOST,
                rollup_user_counts.c.bot == ANY_BOT,
            )
        ).all()
        assert [tuple(c) for c in counted] == [(2, 2)]


@pytest.mark.parametrize(
    "text",
    [
        "2026-06-01T10:20:30.123456+00:00",
        "2026-06-01T10:20:30+00:00",
        "2026-06-01T23:59:59.999999+00:00",
        "2024-02-29T00:00:00+00:00",
        "2026-06-01T12:20:30+02:00",  # not what ingest stages, but still right
    ],
)
def test_epoch_seconds_of_staged_text_and_datetimes(text):
    moment = datetime.fromisoformat(text)
    assert epoch_seconds(text) == int(moment.timestamp()) == epoch_seconds(moment)


def test_inbox_rows_are_the_same_from_text_and_from_datetimes():
    base = dict(
        key_id=1, hostname="h", path="/v1/users/42?x=1", method="GET", status=404,
        response_time=12_345, ip_address=None, location="US", user_agent_id=3, user_id="u9",
        framework="FastAPI", browser="Chrome", os="Linux", device="desktop", is_bot=False,
    )  # fmt: skip
    text = EnrichedRow(created_at="2026-05-31T23:59:59.5+00:00", **base)
    moment = EnrichedRow(created_at=datetime(2026, 5, 31, 23, 59, 59, 500000, UTC), **base)
    assert inbox_rows([text]) == inbox_rows([moment])
    (values,) = inbox_rows([moment])
    assert values[16] == "u9"  # no IP: the user id identifies the user
    assert values[-1] == rt_bucket(12_345)
