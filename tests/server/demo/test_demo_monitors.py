"""The demo's monitors: this server's own endpoints, a month of history, then real checks."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bench.services import free_port
from server.demo.seed import DEMO_MONITORS, demo_key, seed_demo, seed_demo_monitors
from server.models import pings
from server.monitors.uptime import monitor_list, uptime_shares

INTERVAL = 300


def checks(engine, monitor_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(pings.c.monitor_id == monitor_id)).scalar()


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def test_the_demo_has_monitors_of_this_server_with_a_month_of_checks(sqlite_app):
    engine = sqlite_app.engine
    now = datetime.now(UTC).replace(microsecond=0)
    seed_demo(engine, days=1, now=now)
    added = seed_demo_monitors(engine, "http://127.0.0.1:8000", now=now, interval=INTERVAL)
    assert added == 2 * (30 * 24 * 12)
    with engine.connect() as conn:
        key_id = demo_key(conn)
        found = monitor_list(conn, key_id)
        shares = uptime_shares(conn, list(found["id"]), now=now)
    assert list(found["url"]) == [f"http://127.0.0.1:8000{path}" for path, _m in DEMO_MONITORS]
    month = shares[shares["window"] == "30d"].set_index("monitor_id")["uptime"]
    assert all(99 < value < 100 for value in month)  # mostly up, with its outages
    day = shares[shares["window"] == "24h"].set_index("monitor_id")["uptime"]
    assert all(value == 100 for value in day)

    # The next start an hour later (on another port) tops the history up and follows it.
    later = now + timedelta(hours=1)
    more = seed_demo_monitors(engine, "http://127.0.0.1:8123/", now=later, interval=INTERVAL)
    assert more == 2 * 12
    with engine.connect() as conn:
        urls = list(monitor_list(conn, key_id)["url"])
    assert urls == [f"http://127.0.0.1:8123{path}" for path, _m in DEMO_MONITORS]


def test_the_uptime_checks_reach_this_server_for_the_demo_only(tmp_path, geoip_db):
    """Loopback is off limits to monitors (MONITOR_ALLOW_PRIVATE=0), except the demo's own."""
    from server.monitors.checks import check_monitor
    from tests.conftest import sqlite_stack

    stack = sqlite_stack(tmp_path, GEOIP_DB=geoip_db, MONITOR_INTERVAL_SECONDS=INTERVAL)
    base, server = serve(stack.app)
    try:
        seed_demo(stack.engine, days=1)
        seed_demo_monitors(stack.engine, base)
        with stack.engine.connect() as conn:
            demo_ids = list(monitor_list(conn, demo_key(conn))["id"])
        round_ts = (int(time.time()) // INTERVAL + 1) * INTERVAL
        outcomes = [check_monitor(monitor_id, round_ts) for monitor_id in demo_ids]
        assert [(o["status"], o["error"], o["stored"]) for o in outcomes] == [(200, None, True)] * 2

        key = stack.new_key()
        created = stack.client.post(
            "/api/monitors", json={"url": base + "/api/health"}, headers={"X-AUTH-TOKEN": key}
        )
        assert created.status_code == 400  # a user's monitor may not target loopback
    finally:
        server.shutdown()
