"""A batch that cannot be stored: recorded with its error, isolated from the batches grouped
with it, reported by /api/health and handled with `flask --app wsgi batches`."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from server.ingest import staging as enrich
from server.ingest.backlog import MAX_ATTEMPTS
from server.ingest.fields import encode_rows
from server.keys.api_keys import lookup_key
from server.lake.models import requests
from server.models import ingest_batches
from tests.helpers import post_batch, row, web_write_fails


def key_id_of(stack, key) -> int:
    with stack.engine.connect() as conn:
        return lookup_key(conn, key)


def staged_ids(stack, *keys) -> list[int]:
    """The staged batches of these keys (the PostgreSQL database is shared by the session)."""
    ids = [key_id_of(stack, key) for key in keys]
    with stack.engine.connect() as conn:
        query = select(ingest_batches.c.id).where(ingest_batches.c.key_id.in_(ids))
        return list(conn.execute(query.order_by(ingest_batches.c.id)).scalars())


def batch(stack, batch_id):
    with stack.engine.connect() as conn:
        return conn.execute(select(ingest_batches).where(ingest_batches.c.id == batch_id)).first()


def stored(stack, key) -> int:
    with stack.engine.connect() as conn:
        query = select(func.count()).where(requests.c.key_id == key_id_of(stack, key))
        return conn.execute(query).scalar()


def hold_jobs(stack, monkeypatch):
    """Batches are staged (the web's write fails) and stay so until the test runs them (as
    if no worker were up yet)."""
    from server.queue import get_queue

    web_write_fails(monkeypatch)
    if stack.config.embedded_queue:
        monkeypatch.setattr(type(get_queue()), "enqueue", lambda *a, **k: None)


def spoil(stack, batch_id, payload: bytes) -> None:
    """Make a staged batch unstorable, as a validation gap once let such batches through."""
    with stack.engine.begin() as conn:
        conn.execute(
            update(ingest_batches).where(ingest_batches.c.id == batch_id).values(payload=payload)
        )


def test_zone_ids_and_mapped_addresses_read_back_the_same_on_both_backends(stack):
    key = stack.new_key()
    addresses = {
        "fe80::1%eth0": "fe80::1",
        "[fe80::1%25eth0]:80": "fe80::1",
        "[fe80::2%eth0]": "fe80::2",
        "::ffff:1.2.3.4": "::ffff:1.2.3.4",
        "::FFFF:102:304": "::ffff:1.2.3.4",
        "2001:DB8:0:0:0:0:0:1": "2001:db8::1",
    }
    rows = [row(path=f"/{i}", ip_address=ip) for i, ip in enumerate(addresses)]
    response = post_batch(stack.client, key, rows)
    assert response.get_json() == {"accepted": len(rows), "rejected": []}
    stack.process_jobs()
    assert staged_ids(stack, key) == []
    data = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key}).get_json()
    got = {r["path"]: r["ip_address"] for r in data}
    assert got == {f"/{i}": want for i, want in enumerate(addresses.values())}
    # The filter takes any spelling of the address too.
    found = stack.client.get(
        "/api/data?ipAddress=fe80::1%25eth0", headers={"X-AUTH-TOKEN": key}
    ).get_json()
    assert len(found) == 2


def test_a_failing_batch_is_isolated_from_its_group_at_once(pg_app, monkeypatch):
    """PostgreSQL claims waiting batches in groups: one bad batch must not hold the rest."""
    web_write_fails(monkeypatch)  # the batches are staged; their jobs wait in Redis
    keys = [pg_app.new_key() for _ in range(3)]
    for i, key in enumerate(keys):
        rows = [row(path=f"/k{i}/{n}") for n in range(50)]
        assert post_batch(pg_app.client, key, rows).status_code == 201
    first, bad, last = staged_ids(pg_app, *keys)
    # A staged row PostgreSQL refuses (validation never stages one: a smallint overflow).
    staged = [["2026-01-01T00:00:00+00:00", "h", "/", "GET", 70000, 1, None, None, None]]
    spoil(pg_app, bad, encode_rows(staged))

    assert enrich.process_batch(first) == 100  # its group failed; each then ran alone
    assert [stored(pg_app, key) for key in keys] == [50, 0, 50]
    failed = batch(pg_app, bad)
    assert failed.attempts == 1
    assert "smallint" in failed.last_error and "70000" in failed.last_error
    assert failed.last_error_at is not None
    assert staged_ids(pg_app, *keys) == [bad]
    # The others' jobs were taken off the queue; the bad one's still waits, and fails alone.
    with pytest.raises(Exception, match="smallint"):
        enrich.process_batch(bad)
    assert batch(pg_app, bad).attempts == 2
    pg_app.client.delete("/api/data", headers={"X-AUTH-TOKEN": keys[1]})


def test_a_batch_given_up_on_is_reported_and_the_cli_shows_retries_and_discards_it(
    stack, monkeypatch
):
    hold_jobs(stack, monkeypatch)
    key = stack.new_key()
    assert post_batch(stack.client, key, [row(path="/good")]).status_code == 201
    assert post_batch(stack.client, key, [row(path="/spoiled")]).status_code == 201
    good, bad = staged_ids(stack, key)
    spoil(stack, bad, b"\x00 not a staged payload")
    assert enrich.process_batch(good) == 1

    # (On PostgreSQL the good batch's job grouped it: that was its first attempt.)
    while batch(stack, bad).attempts < MAX_ATTEMPTS:
        with pytest.raises(Exception):  # noqa: B017 (whatever the decoder raises)
            enrich.process_batch(bad)
    health = stack.client.get("/api/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded"
    assert body["failed_batches"] == 1
    assert "1 accepted batches could not be stored" in body["problems"][0]
    assert "flask --app wsgi batches" in body["problems"][0]
    # The sweeper leaves it alone now.
    from server.ingest.sweep import pending_batches

    with stack.engine.connect() as conn:
        assert pending_batches(conn, 0) == []

    monkeypatch.undo()  # the workers are back
    cli = stack.app.test_cli_runner()
    listing = cli.invoke(args=["batches", "list"])
    assert listing.exit_code == 0, listing.output
    line = next(li for li in listing.output.splitlines() if li.split()[0] == str(bad))
    assert line.split()[4:7] == [str(MAX_ATTEMPTS), "failed", "JSONDecodeError:"]
    shown = cli.invoke(args=["batches", "show", str(bad)])
    assert shown.exit_code == 0
    assert f"{MAX_ATTEMPTS} attempts, failed" in shown.output
    assert "JSONDecodeError" in shown.output
    assert cli.invoke(args=["batches", "show", "999999"]).exit_code != 0

    retried = cli.invoke(args=["batches", "retry", str(bad)])
    assert retried.exit_code == 0, retried.output
    if stack.config.embedded_queue:
        assert f"batch {bad}: failed again: JSONDecodeError" in retried.output
    else:
        assert "queued 1 batches" in retried.output
        stack.process_jobs()
    assert batch(stack, bad).attempts == 1  # its tries given back, one used
    assert stack.client.get("/api/health").get_json()["status"] == "ok"

    spoil(stack, bad, encode_rows([["2026-01-01T00:00:00+00:00", "h", "/fixed", "GET", 200,
                                    1, None, None, None]]))  # fmt: skip
    fixed = cli.invoke(args=["batches", "retry", str(bad)])
    assert fixed.exit_code == 0, fixed.output
    stack.process_jobs()
    assert staged_ids(stack, key) == []
    assert stored(stack, key) == 2

    hold_jobs(stack, monkeypatch)
    assert post_batch(stack.client, key, [row(path="/doomed")]).status_code == 201
    (doomed,) = staged_ids(stack, key)
    with stack.engine.begin() as conn:
        conn.execute(
            update(ingest_batches)
            .where(ingest_batches.c.id == doomed)
            .values(attempts=MAX_ATTEMPTS)
        )
    refused = cli.invoke(args=["batches", "discard", "--failed"], input="n\n")
    assert refused.exit_code != 0 and staged_ids(stack, key) == [doomed]
    discarded = cli.invoke(args=["batches", "discard", "--failed", "--yes"])
    assert f"batch {doomed}: discarded (1 rows)" in discarded.output
    assert staged_ids(stack, key) == []
    assert cli.invoke(args=["batches", "list"]).output.startswith("no batches waiting")
    assert stack.client.get("/api/health").get_json()["failed_batches"] == 0
