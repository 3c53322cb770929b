"""The shared answer cache is exact: a repeated view is served only while the key's rows
are exactly those it was computed from (Redis on PostgreSQL, memory embedded)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from dash_app.panels import refresh, remembered_refresh
from server.keys.api_keys import lookup_key
from server.lake.export import flush
from server.stats import cache
from server.stats.filters import Filters
from tests.dash_app.helpers import ingest, known_rows


def _key(stack):
    stack.config.LAKE_EXPORT_SECONDS = 3600  # rows stay hot until the test exports them
    key = stack.new_key()
    with stack.engine.connect() as conn:
        return key, lookup_key(conn, key)


def _shown(key_id, filters):
    data, out = remembered_refresh(key_id, filters)
    return data.summary["requests"], data.users, out["endpoints"]


@pytest.mark.parametrize(
    "filters", [Filters(), Filters(period="all").with_click("status_class", "2xx")]
)
def test_rows_arriving_between_two_identical_views_show_in_the_second(stack, filters):
    expected_store = cache.RedisStore if stack.backend == "postgres" else cache.MemoryStore
    assert isinstance(cache.store(), expected_store)
    key, key_id = _key(stack)
    now = datetime.now(UTC)
    rows = known_rows(now)
    ingest(stack, key, rows[:30])
    first = _shown(key_id, filters)
    hits = cache.counts["hit"]
    assert _shown(key_id, filters) == first  # the same rows: the stored answer
    assert cache.counts["hit"] == hits + 1

    ingest(stack, key, rows[30:])  # rows arrive between two identical views
    second = _shown(key_id, filters)
    assert cache.counts["hit"] == hits + 1  # computed anew
    assert second[0] > first[0]
    uncached = refresh(key_id, filters)[0]
    assert second[:2] == (uncached.summary["requests"], uncached.users)

    flush()  # the hot rows move to files: a new snapshot, the same numbers
    third = _shown(key_id, filters)
    assert cache.counts["hit"] == hits + 1
    assert third == second

    # One more row, past the boundary, after the export.
    extra = [(0, {**rows[0][1], "created_at": (now - timedelta(minutes=1)).isoformat()})]
    ingest(stack, key, extra)
    fourth = _shown(key_id, filters)
    assert fourth[0] == second[0] + 1  # a 200


def test_a_different_view_or_key_is_never_served_another_answer(stack):
    key, key_id = _key(stack)
    other_key, other_id = _key(stack)
    now = datetime.now(UTC)
    ingest(stack, key, known_rows(now))
    ingest(stack, other_key, known_rows(now)[:10])
    all_rows = _shown(key_id, Filters())
    errors = _shown(key_id, Filters().with_click("status_class", "5xx"))
    assert errors[0] < all_rows[0]
    assert _shown(other_id, Filters())[0] == 10
    assert _shown(key_id, Filters())[0] == all_rows[0]


def test_an_entry_of_another_state_is_not_served(stack):
    key, key_id = _key(stack)
    ingest(stack, key, known_rows(datetime.now(UTC))[:5])
    state = cache.current_fingerprint(key_id)
    # An entry stored for a state the rows are not in.
    cache.store().put(cache._name(state + "x", "q"), b"")
    assert cache.remembered(key_id, "q", lambda: ("computed", state)) == "computed"
    assert cache.remembered(key_id, "q", lambda: ("again", state)) == "computed"  # stored
    # An entry without this server's seal (written by whoever reached Redis) is not read.
    question = f"{cache.deployment()}|forged"
    cache.store().put(cache._name(state, question), pickle.dumps((state, question, "forged")))
    assert cache.remembered(key_id, "forged", lambda: ("computed", state)) == "computed"


def test_the_memory_store_is_bounded():
    found = cache.MemoryStore(limit_bytes=1000)
    for i in range(50):
        found.put(f"e{i}", b"x" * 100)
    assert found.size <= 1000
    assert found.get("e49") is not None and found.get("e0") is None


def test_the_redis_store_is_bounded(redis_url):
    found = cache.RedisStore(redis_url, limit_bytes=1000)
    for i in range(50):
        found.put(f"{cache.PREFIX}e{i}", b"x" * 100)
    assert int(found.redis.get(cache.TOTAL)) <= 1000
    kept = [n for n in found.redis.scan_iter(match=cache.PREFIX + "e*")]
    assert 1 <= len(kept) <= 10
    assert found.get(f"{cache.PREFIX}e49") is not None
    assert found.get(f"{cache.PREFIX}e0") is None


def test_the_cache_can_be_turned_off(make_stack):
    make_stack(ANSWER_CACHE_MB=0)
    assert cache.store() is None
