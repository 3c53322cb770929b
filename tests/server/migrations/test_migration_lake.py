"""Upgrading a database that holds requests in the old layout: every row comes through,
with its derived columns and users numbered, and the export then moves them into files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from server.cli import upgrade_database
from tests.conftest import make_config

OLD_ROWS = [
    # (created_at, hostname, path, method, status, rt, ip, location, agent id, user id)
    (0, "api.example.com", "/v1/users/42?x=1", "GET", 200, 12, "8.8.8.8", "US", 1, None),
    (1, "api.example.com", "/v2/orders", "POST", 500, 340, None, None, 2, "u7"),
    (2, "eu.example.com", "/health", "GET", 200, 1, "2001:db8::1", "DE", None, None),
    (40, "api.example.com", "/v1/users/43", "GET", 404, 3, "8.8.8.8", "US", 1, None),
]
AGENTS = [
    (1, "curl/8.5.0", "curl", "Other", "other", False),
    (2, "Googlebot/2.1", "Googlebot", "Other", "bot", True),
]


def test_old_requests_come_through_the_upgrade(old_database, tmp_path):
    from server.config import use_config
    from server.db import init_engine

    url = old_database
    upgrade_database(url, "0007_ids_errors_digests")  # the layout before the store
    now = datetime.now(UTC).replace(microsecond=123456)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, key_hash, created_at, last_active_at, is_demo) "
                "VALUES (1, :h, :t, :t, false)"
            ),
            {"h": b"\x01" * 32, "t": now},
        )
        for agent in AGENTS:
            conn.execute(
                text(
                    "INSERT INTO user_agents (id, user_agent, browser, os, device, is_bot) "
                    "VALUES (:i, :u, :b, :o, :d, :bot)"
                ),
                dict(zip(("i", "u", "b", "o", "d", "bot"), agent, strict=True)),
            )
        for days, host, path, method, status, rt, ip, place, agent, user in OLD_ROWS:
            conn.execute(
                text(
                    "INSERT INTO requests (key_id, created_at, hostname, path, method, status, "
                    "response_time, ip_address, location, user_agent_id, user_id, framework) "
                    "VALUES (1, :t, :h, :p, :m, :s, :rt, :ip, :loc, :a, :u, 'FastAPI')"
                ),
                {"t": now - timedelta(days=days), "h": host, "p": path, "m": method,
                 "s": status, "rt": rt, "ip": ip, "loc": place, "a": agent, "u": user},
            )  # fmt: skip
    engine.dispose()

    upgrade_database(url)

    config = use_config(make_config(url, "", tmp_path))
    init_engine(config.DATABASE_URL)
    from server.lake.export import flush
    from server.queue import init_queue

    init_queue("")
    flush()
    import json

    from server.stats.raw import RequestFilter, data_page_json

    body, count = data_page_json(RequestFilter(key_id=1), 1, 100)
    rows = json.loads(body)
    assert count == len(OLD_ROWS)
    by_path = {r["path"]: r for r in rows}
    first = by_path["/v1/users/42?x=1"]
    assert first["ip_address"] == "8.8.8.8" and first["user_agent"] == "curl/8.5.0"
    assert first["browser"] == "curl" and first["location"] == "US"
    assert first["created_at"] == (now.isoformat(timespec="microseconds"))
    assert by_path["/v2/orders"]["user_id"] == "u7" and by_path["/v2/orders"]["ip_address"] is None
    assert by_path["/health"]["ip_address"] == "2001:db8::1"

    from dash_app.panels import compute
    from server.stats.filters import Filters

    data = compute(1, Filters(period="all"), now)
    assert data.summary["requests"] == 4
    assert data.users == 3  # 8.8.8.8, u7, 2001:db8::1
    assert set(data.endpoints["endpoint"]) == {"/v1/users/{id}", "/v2/orders", "/health"}
    versions = dict(zip(data.versions["version"], data.versions["n"], strict=True))
    assert versions == {"v1": 2, "v2": 1, "": 1}
    clicked = compute(1, Filters(period="all").with_click("user", "8.8.8.8"), now)
    assert clicked.summary["requests"] == 2
