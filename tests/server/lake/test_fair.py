"""Fairness between keys in one process (server.lake.fair): a key runs ENGINE_KEY_SLOTS units
of engine work at once and ENGINE_KEY_QUEUE more wait; past that it is told it is busy, and
another key's work never waits behind it. (Six all-time refreshes of one key raised another
key's trivial refresh from 0.01 s to 3.7 s; bench/fairness.py measures it.)"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from server.lake.fair import EngineBusy, FairGate, gate


@contextmanager
def held(turns: FairGate, key_id: int):
    """A turn of `key_id` held by another thread (as another request would) until exit."""
    inside, leave = threading.Event(), threading.Event()

    def hold():
        with turns.turn(key_id):
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        leave.set()
        thread.join(10)


def test_another_key_never_waits_behind_a_busy_one():
    turns = FairGate(slots=1, queue=1)
    with held(turns, 1):
        started = time.monotonic()
        with turns.turn(2):
            pass
        assert time.monotonic() - started < 0.5


def test_a_key_waits_for_its_turn_and_past_its_queue_is_told_it_is_busy():
    turns = FairGate(slots=1, queue=1)
    order = []
    with held(turns, 1):
        waiter = threading.Thread(target=lambda: _run(turns, 1, order), daemon=True)
        waiter.start()
        deadline = time.monotonic() + 10
        while turns.load().get(1) != (1, 1):
            assert time.monotonic() < deadline, turns.load()
            time.sleep(0.01)
        with pytest.raises(EngineBusy, match="ENGINE_KEY_SLOTS"), turns.turn(1):
            pass
        assert order == []  # still waiting while the turn is held
    waiter.join(10)
    assert order == ["ran"]
    assert turns.load() == {}


def test_a_thread_holding_a_turn_goes_on_with_nested_work():
    turns = FairGate(slots=1, queue=0)
    # Work nested in a unit (a join of datasets) does not wait for a second turn.
    with turns.turn(1), turns.turn(1):
        assert turns.load() == {1: (1, 0)}


def test_the_api_answers_429_with_retry_after_when_the_key_is_busy(tmp_path, geoip_db):
    from server.keys.api_keys import lookup_key
    from tests.conftest import sqlite_stack

    stack = sqlite_stack(tmp_path, GEOIP_DB=geoip_db, ENGINE_KEY_SLOTS=1, ENGINE_KEY_QUEUE=0)
    key = stack.new_key()
    other = stack.new_key()

    with stack.engine.connect() as conn:
        busy_id = lookup_key(conn, key)
    with held(gate(stack.config), busy_id):
        answer = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key})
        assert answer.status_code == 429, answer.get_json()
        assert answer.headers["Retry-After"] == "2"
        assert "ENGINE_KEY_SLOTS" in answer.get_json()["message"]
        # Another key is served meanwhile.
        assert stack.client.get("/api/data", headers={"X-AUTH-TOKEN": other}).status_code == 200
    assert stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key}).status_code == 200


def _run(turns: FairGate, key_id: int, order: list) -> None:
    with turns.turn(key_id):
        order.append("ran")


def test_the_dashboard_says_the_key_is_busy_in_the_page(tmp_path, geoip_db):
    import json

    from server.keys.api_keys import lookup_key
    from tests.conftest import sqlite_stack
    from tests.dash_app.test_first_hour_pages import overview
    from tests.dash_app.test_session import sign_in

    stack = sqlite_stack(tmp_path, GEOIP_DB=geoip_db, ENGINE_KEY_SLOTS=1, ENGINE_KEY_QUEUE=0)
    key = stack.new_key()
    assert sign_in(stack.client, key).status_code == 303
    with stack.engine.connect() as conn:
        busy_id = lookup_key(conn, key)
    with held(gate(stack.config), busy_id):
        shown = json.dumps(overview(stack.client, whole=True))
    # Said above the panels, whose numbers stay those of the view before (dash_app.pages.state).
    assert "ov-problem-text" in shown and "ENGINE_KEY_SLOTS" in shown, shown[:500]
    assert "ENGINE_KEY_SLOTS" not in json.dumps(overview(stack.client, whole=True))


def test_a_key_that_keeps_the_engine_busy_runs_narrow_while_another_key_is_there():
    turns = FairGate(slots=1, queue=2)

    def second_turn(found: list) -> None:
        with turns.turn(1) as narrow:
            found.append(narrow)

    # Alone at the engine: its waiting work runs as wide as ever.
    alone: list = []
    with held(turns, 1):
        waiter = threading.Thread(target=second_turn, args=(alone,), daemon=True)
        waiter.start()
        _until(lambda: turns.load().get(1) == (1, 1))
    waiter.join(10)
    assert alone == [False]
    # Another key at the engine: the busy key's next unit takes one thread.
    crowded: list = []
    with held(turns, 2):
        with held(turns, 1):
            waiter = threading.Thread(target=second_turn, args=(crowded,), daemon=True)
            waiter.start()
            _until(lambda: turns.load().get(1) == (1, 1))
        waiter.join(10)  # its turn came while key 2 was still there
    assert crowded == [True]
    # The other key itself, never kept waiting, is never narrow.
    with held(turns, 1), turns.turn(2) as narrow:
        assert narrow is False


def _until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
