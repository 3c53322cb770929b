"""Closed months' summaries answer the overview with exactly the rows' numbers, unfiltered
and under the clicks a summary family answers.

Rows spread over four months, exported and compacted (so closed months get summaries),
more rows left hot: every period's overview from the summaries, with no filter and with
each kind of click a family answers, must equal the overview asked of every row, and the
independent count of what was sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dash_app.panels import compute
from server.keys.api_keys import lookup_key
from server.lake import catalog
from server.lake.compaction import current_month
from server.lake.export import flush
from server.stats import summaries
from server.stats.filters import Filters, window_for
from tests.dash_app.helpers import CHROME, GOOGLEBOT, IPHONE, Expected, ingest

PERIODS = ("30d", "6m", "1y", "all")
# Filters a summary family answers (server.stats.summaries.family), with the family.
ANSWERED = [
    (Filters(), ""),
    (Filters().with_click("status", "200"), "sv"),
    (Filters().with_click("status_class", "4xx"), "sv"),
    (Filters(exclude_404=True), "sv"),
    (Filters().with_click("version", "v1"), "sv"),
    (Filters().with_click("version", "v2").with_click("status_class", "2xx"), "sv"),
    (Filters().with_click("location", "US"), "loc"),
    (Filters().with_click("location", ""), "loc"),
    (Filters().with_click("browser", "Chrome"), "ua"),
    (Filters().with_click("os", "iOS").with_click("device", "mobile"), "ua"),
    (Filters().with_click("device", "bot"), "ua"),
    (Filters().with_click("location", "US").with_click("browser", "Chrome"), "place"),
    (Filters().with_click("location", "").with_click("device", "desktop"), "place"),
    (Filters().with_click("endpoint", "GET /v1/items/{id}"), "ep"),
    (Filters().with_click("endpoint", "POST /v2/orders/{id}"), "ep"),
    (Filters().with_click("endpoint", "GET /v1/items/{id}").with_click("status", "404"), "ep"),
    (Filters(exclude_404=True).with_click("endpoint", "GET /health"), "ep"),
]
PANELS = ("histogram", "status_codes", "activity", "hours", "weekdays", "endpoints", "versions",
          "locations", "browsers", "systems", "devices", "top_users", "user_ids")  # fmt: skip


def spread_rows(now: datetime) -> list[tuple[int, dict]]:
    rows = []
    agents = (CHROME, IPHONE, GOOGLEBOT)
    for i in range(400):
        created = now - timedelta(hours=i * 7.3 + 1)
        rows.append(
            (
                2 if i % 13 == 0 else 0,
                {
                    "hostname": ("api.example.com", "eu.example.com")[i % 2],
                    "ip_address": ("8.8.8.8", "81.2.69.160", "5.1.2.3", "8.8.8.9")[i % 4],
                    "path": ("/v1/items/{n}", "/v2/orders/{n}?x=1", "/health")[i % 3].format(
                        n=i % 7
                    ),
                    "user_agent": agents[i % 3],
                    "method": "POST" if i % 5 == 4 else "GET",
                    "status": (200, 200, 201, 404, 500, 301)[i % 6],
                    "response_time": 3 + (i * 37) % 900,
                    "user_id": f"user{i % 9}",
                    "created_at": created.isoformat(),
                },
            )
        )
    # One caller, endpoint, version and user id seen only in the hour before 30 days' window
    # (inside the closed month it starts in): taken off that month's summary, none shows.
    before = datetime.fromtimestamp(window_for("30d", now).since - 3600, UTC)
    rows.append((0, {"hostname": "api.example.com", "ip_address": "9.9.9.9",
                     "path": "/v9/only-before", "user_agent": GOOGLEBOT, "method": "PUT",
                     "status": 418, "response_time": 4321, "user_id": "lonely",
                     "created_at": before.isoformat()}))  # fmt: skip
    return rows


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if a.empty and b.empty:
        return True
    key = list(a.columns)
    left = a.sort_values(key).reset_index(drop=True)
    right = b[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=False)
    return True


@pytest.mark.parametrize("share", [summaries.STRADDLE_SHARE, 1.0], ids=["default", "straddled"])
def test_summaries_answer_as_the_rows_do(stack, monkeypatch, share):
    """With `share` 1.0 (and no least number of rows) every closed month the window
    starts in is answered by its summary less its rows before the window
    (summaries.Outside), not by its rows."""
    monkeypatch.setattr(summaries, "STRADDLE_SHARE", share)
    if share == 1.0:
        monkeypatch.setattr(summaries, "STRADDLE_ROWS", 0)
    stack.config.LAKE_EXPORT_SECONDS = 3600
    now = datetime.now(UTC)
    rows = spread_rows(now)
    key = stack.new_key()
    ingest(stack, key, rows[40:])
    flush()  # export, compact; closed months get their summaries
    ingest(stack, key, rows[:40])  # the newest stay hot
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
        files = catalog.live_files(conn, key_id)
    closed = [f for f in files if f.month < current_month()]
    assert closed and all(f.summary for f in closed)

    used, straddled = [], []
    real = summaries.breakdowns_from
    monkeypatch.setattr(summaries, "breakdowns_from", lambda *a: used.append(1) or real(*a))
    real_sets = summaries.Outside.sets
    monkeypatch.setattr(
        summaries.Outside,
        "sets",
        lambda self: straddled.append(bool(self.files)) or real_sets(self),
    )
    for base, _family in ANSWERED:
        for period in PERIODS:
            filters = replace(base, period=period)
            summarised = compute(key_id, filters, now)
            with monkeypatch.context() as m:
                m.setattr(summaries, "usable", lambda *_a: False)
                plain = compute(key_id, filters, now)
            case = (period, filters)
            expected = Expected(rows, filters, plain.window.since, plain.window.until)
            assert summarised.summary == plain.summary, case
            assert summarised.summary["requests"] == expected.requests, case
            assert summarised.users == plain.users == expected.users, case
            ids = Counter(r["user_id"] for r in expected.rows if r["user_id"] is not None)
            want = sorted(ids.items(), key=lambda item: (-item[1], item[0]))[:10]
            got = list(summarised.user_ids[["user_id", "n"]].itertuples(index=False, name=None))
            assert got == want, case
            assert summarised.percentiles == pytest.approx(plain.percentiles), case
            assert summarised.hostnames == plain.hostnames
            for name in PANELS:
                assert frames_equal(getattr(summarised, name), getattr(plain, name)), (case, name)
    # The long periods of every case were answered from summaries, and the cases were not
    # empty ones (a click that matched nothing would prove little).
    assert len(used) >= 3 * len(ANSWERED)
    # 30 days starts inside a closed month: with share 1.0 that month's summary answers,
    # less its rows before the window (by default its few rows are read).
    assert any(straddled) == (share == 1.0)
    for base, _family in ANSWERED:
        filters = replace(base, period="all")
        assert compute(key_id, filters, now).summary["requests"] > 0, filters


def test_which_filters_summaries_answer():
    """A family answers only conditions on its own columns, over daily buckets, with
    endpoints shown as templates; anything else is asked of the rows."""
    year = window_for("1y")
    for filters, name in ANSWERED:
        assert summaries.family(replace(filters, period="1y"), year) == name, filters
    for filters in (
        Filters(period="1y", exclude_bots=True),
        Filters(period="1y", hostname="h"),
        Filters(period="1y", keep_ids=True),
        Filters(period="1y", keep_params=True),
        Filters(period="1y", hidden=("/x*",)),
        Filters(period="1y", keep_ids=True).with_click("endpoint", "GET /v1/items/3"),
        Filters(period="1y").with_click("endpoint", "GET /health").with_click("version", "v1"),
        Filters(period="1y").with_click("user", "user1"),
        Filters(period="1y").with_click("location", "US").with_click("status", "200"),
        Filters(period="1y", exclude_404=True).with_click("os", "iOS"),
        Filters(period="1y", fixed=(("hostname", "h"),)),
    ):
        assert not summaries.usable(filters, year), filters
    assert summaries.family(Filters(period="1y", fixed=(("status", "200"),)), year) == "sv"
    fixed = Filters(period="1y", keep_ids=False, fixed=(("endpoint", "GET /health"),))
    assert summaries.family(fixed, year) == "ep"
    assert not summaries.usable(Filters(period="7d"), window_for("7d"))


def test_remembered_summaries_stay_exact_as_rows_arrive(stack):
    """The summaries' answers are kept between refreshes (server.stats.summaries._Kept);
    rows that arrive between two identical views, late ones into summarised days among
    them, show in the second view: every number as the rows alone give it."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    now = datetime.now(UTC)
    rows = spread_rows(now)
    key = stack.new_key()
    ingest(stack, key, rows[40:])
    flush()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    summaries._kept.clear()
    filters = Filters(period="all")
    first = compute(key_id, filters, now)
    assert summaries._kept.frames  # the summaries' answers are kept
    kept = dict(summaries._kept.frames)
    # Late rows into a summarised day (a user of its own, so the day's users change too),
    # and new rows.
    late = [
        (0, {**row, "user_id": "late-user", "ip_address": "203.0.113.7"})
        for _privacy, row in spread_rows(now)[300:305]
    ]
    ingest(stack, key, late + rows[:40])
    second = compute(key_id, filters, now)
    # The summaries were not asked again: the same files, the same kept answers.
    assert all(summaries._kept.frames[k] is frame for k, frame in kept.items())
    summaries._kept.clear()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(summaries, "usable", lambda *_a: False)
        plain = compute(key_id, filters, now)
    everything = rows + late
    expected = Expected(everything, filters, plain.window.since, plain.window.until)
    assert second.summary["requests"] == first.summary["requests"] + 45 == expected.requests
    assert second.summary == plain.summary
    assert second.users == plain.users == expected.users > first.users
    for name in PANELS:
        assert frames_equal(getattr(second, name), getattr(plain, name)), name


def test_a_summary_answer_one_process_computed_serves_another(stack):
    """With Redis (REDIS_URL) the summaries' answers are shared by every web process
    (summaries.remembered): a process that never asked (here: this one, its own kept
    answers forgotten) reads them instead of asking the files, and shows the same
    numbers; an entry without this server's seal is never read."""
    if stack.backend != "postgres":
        assert summaries.shared_store() is None  # embedded: no Redis, each process its own
        return
    store = summaries.shared_store()
    assert store is not None
    store.clear()
    stack.config.LAKE_EXPORT_SECONDS = 3600
    now = datetime.now(UTC)
    rows = spread_rows(now)
    key = stack.new_key()
    ingest(stack, key, rows)
    flush()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    filters = Filters(period="all").with_click("status_class", "2xx")
    summaries._kept.clear()
    first = compute(key_id, filters, now)
    assert summaries._kept.frames

    summaries._kept.clear()  # another process: nothing kept of its own
    hits, misses = summaries.shared_counts["hit"], summaries.shared_counts["miss"]
    second = compute(key_id, filters, now)
    assert summaries.shared_counts["miss"] == misses  # no summary asked of the files
    assert summaries.shared_counts["hit"] > hits
    assert second.summary == first.summary
    assert second.users == first.users
    for name in PANELS:
        assert frames_equal(getattr(second, name), getattr(first, name)), name
    expected = Expected(rows, filters, second.window.since, second.window.until)
    assert second.summary["requests"] == expected.requests

    # Entries replaced by unsealed ones (whoever reached Redis wrote them): not read.
    for name in store.redis.scan_iter(match=summaries.SHARED_PREFIX + "*"):
        if not name.decode().endswith(("index", "sizes", "total")):
            store.redis.set(name, b"\0" * 32 + b"forged")
    summaries._kept.clear()
    hits = summaries.shared_counts["hit"]
    third = compute(key_id, filters, now)
    assert summaries.shared_counts["hit"] == hits  # asked of the files again
    assert third.summary == first.summary
    summaries._kept.clear()
