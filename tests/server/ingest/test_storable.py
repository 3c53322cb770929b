"""Whatever ingest accepts, both databases store: a row either one would refuse is refused at
ingest, by index and reason, never found out by the worker after the 201."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.ingest.columns import Batch
from server.ingest.enrich import Lookups, stored_rows, who
from server.ingest.fields import validate_rows
from server.lake import agents as useragent
from server.lake import write
from server.lake.users import number_users
from tests.conftest import sqlite_stack

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)

# Text as clients send it, NUL, lone surrogates and all (JSON allows both).
any_text = st.text(st.characters(codec=None), max_size=300)
addresses = st.one_of(
    st.ip_addresses().map(str),
    st.builds(lambda ip, zone: f"{ip}%{zone}", st.ip_addresses(v=6).map(str), any_text),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6).map(str), st.integers()),
    any_text,
    st.none(),
)
moments = st.datetimes(
    min_value=datetime(1999, 12, 30), max_value=datetime(2026, 6, 3), timezones=st.timezones()
).map(lambda d: d.isoformat())
rows = st.fixed_dictionaries(
    {
        "hostname": st.one_of(st.none(), any_text),
        "ip_address": addresses,
        "path": any_text,
        "user_agent": st.one_of(st.none(), any_text),
        "method": st.sampled_from(["GET", "get", "PoSt", "OPTIONS", "optıons", "FETCH", ""]),
        "status": st.one_of(st.integers(0, 700), st.floats(allow_nan=True)),
        "response_time": st.one_of(st.integers(-5, 10**9), st.floats()),
        "user_id": st.one_of(st.none(), any_text, st.integers(-(10**30), 10**30)),
        "created_at": st.one_of(moments, any_text),
    }
)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        return sqlite_stack(tmp_path).engine
    from server.db import init_engine

    useragent.forget()
    return init_engine(request.getfixturevalue("pg_url"))


def store(engine, staged: list, privacy_level: int) -> None:
    """The worker's own writes, in a transaction that is then rolled back."""
    agents = useragent.resolve(engine, {r[7] for r in staged if r[7]})
    batch = Batch.from_staged(staged, privacy_level)
    with engine.connect() as conn, conn.begin() as transaction:
        users = number_users(conn, {(1, name) for name in who(batch)})
        numbers = {name: number for (_key, name), number in users.items()}
        rows = stored_rows(1, "FastAPI", batch, Lookups(agents, {1: numbers}))
        write.store_rows(conn, rows.requests)
        transaction.rollback()


def test_every_accepted_row_is_stored(engine):
    @given(batch=st.lists(rows, min_size=1, max_size=20), level=st.sampled_from([0, 1, 2]))
    @example(batch=[{"ip_address": "fe80::1%eth0"}], level=0)
    @example(batch=[{"ip_address": "[fe80::1%25eth0]:80"}], level=1)
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def check(batch, level):
        batch = [
            {"path": "/p", "method": "GET", "status": 200, "response_time": 1,
             "created_at": "2026-06-01T11:00:00+00:00", **row}
            for row in batch
        ]  # fmt: skip
        accepted, rejected = validate_rows(batch, level, NOW)
        assert len(accepted) + len(rejected) == len(batch)
        for refusal in rejected:
            assert refusal["error"].split(":")[0] in batch[0], refusal
        if accepted:
            store(engine, accepted, level)

    check()
