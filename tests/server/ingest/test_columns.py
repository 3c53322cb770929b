"""Batches taken column by column (server.ingest.columns) store exactly what the row-by-row
rules (server.ingest.fields) store: the same staged rows, refusals and stored rows
(server.ingest.enrich), for clean batches and for batches with every kind of odd or bad
field."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from server.ingest.capture import EXTRA_FIELDS
from server.ingest.columns import Batch, check
from server.ingest.enrich import enrich
from server.ingest.fields import validate_rows
from server.lake.layout import WRITE_NAMES
from server.rules import epoch_micros
from tests.helpers import CHROME, GOOGLEBOT, IPHONE

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


# What well-behaved clients send: a batch of only these goes column by column.
def millis(seconds_ago: float) -> str:
    """To the millisecond, as our middleware writes it (api_analytics.records)."""
    return (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")


CLEAN = {
    "created_at": [
        *(stamp(3.25), stamp(60), stamp(3600.000001), stamp(86400 * 300), millis(1.5)),
        *(millis(7.0), millis(86400 * 40 + 0.012), "2026-06-01T11:59:59.000000+00:00"),
    ],
    "hostname": ["api.example.com", "eu.example.com", "", None],
    "path": ["/v1/users/123", "/v2/items/abc?x=1", "/", "/health", "/v1/u/9f8e7d6c5b4a39281706"],
    "method": ["GET", "POST", "DELETE", "OPTIONS"],
    "status": [200, 201, 404, 500, 100, 599],
    "response_time": [0, 12, 86_400_000, 12.5, 0.5, 1.5, 3.4999],
    "ip_address": ["8.8.8.8", "81.2.69.1", "2001:db8::1", "10.1.2.3", None],
    "user_agent": [CHROME, IPHONE, GOOGLEBOT, "curl/8.5.0", "", None],
    "user_id": ["u1", "user-42", "", None],
}
# What the row-by-row rules repair (and store) or refuse.
ODD = {
    "created_at": [
        stamp(0)[:19] + "Z",
        "2026-06-01T10:00:00+02:00",
        "2026-06-01T10:00:00",
        "2026-06-01T11:00:00.1+00:00",
        "2026-06-01T11:00:00.1234+00:00",
        "2026-06-01T11:00:00.1234567+00:00",
        "2026-06-01T11:00:00.123Z",
        "2026-06-01T11:00:00.123-00:00",
        "2026-06-01 11:00:00+00:00",
        "2026-02-30T10:00:00+00:00",
        "2026-06-01T24:00:00+00:00",
        "2026-06-01T11:00:60+00:00",
        "1999-12-31T23:59:59+00:00",
        "2000-01-01T00:00:00+00:00",
        stamp(-86400),
        stamp(-86401),
        "٢٠٢٦-06-01T11:00:00+00:00",
        stamp(5) + "\n" + stamp(5),
        1780000000,
        None,
        "",
        "yesterday",
    ],  # fmt: skip
    "hostname": [5, "h" * 256, "héllo.example", "a\x00b", "\ud800x", True],
    "path": ["", None, 7, "/p" * 200, "/é", "/a\x00b", "/\ud800"],
    "method": ["get", "FOO", None, 1, ""],
    "status": [99, 600, 200.0, 404.5, True, "200", None, 10**30],
    "response_time": [
        -1,
        -0.4,
        float("nan"),
        float("inf"),
        86_400_001,
        86_400_000.4,
        True,
        "5",
        None,
    ],  # fmt: skip
    "ip_address": [
        "81.2.69.1, 10.0.0.1",
        "[2001:db8::1]:443",
        "8.8.8.8:80",
        "not an ip",
        "",
        5,
        ["8.8.8.8"],
        "fe80::1%eth0",
        "x" * 2000,
    ],  # fmt: skip
    "user_agent": [3, "é-agent", "u" * 300, False],
    "user_id": [42, True, 1.5, "x" * 300, "é", "a\x00", ["u1"]],
}


def clean_row(rng: random.Random) -> dict:
    return {field: rng.choice(values) for field, values in CLEAN.items()}


def odd_row(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return rng.choice([None, [], "row", 5])
    row = clean_row(rng)
    for field in rng.sample(sorted(ODD), rng.randint(1, 2)):
        row[field] = rng.choice(ODD[field])
    if rng.random() < 0.1:
        del row[rng.choice(sorted(row))]
    return row


def test_a_batch_mixing_second_millisecond_and_microsecond_stamps_goes_by_column():
    rows = [clean_row(random.Random(n)) for n in range(11)]
    for n, row in enumerate(rows):  # lengths 25, 29, 32: their sum alone tells nothing
        row["created_at"] = (stamp(n)[:19] + "+00:00", millis(n + 0.25), stamp(n + 0.5))[n % 3]
    batch, _ = check(rows, 0, NOW)
    assert batch.by_column
    expected, _ = validate_rows(rows, 0, NOW)
    same(batch.staged(), expected)
    assert batch.micros == [epoch_micros(r[0]) for r in expected]


def test_what_our_middleware_sends_goes_by_column(stack):
    """A batch as api_analytics formats it (the real formatter), taken column by column
    and stored as the row-by-row rules would store it."""
    import json
    import time

    from api_analytics.records import Record, RowFormatter

    now = time.perf_counter()
    records = [
        Record(now - 2 + n / 100, now - 2 + n / 100 + 0.0123, "GET", f"/v1/items/{n}", 200,
               b"api.example.com", CHROME.encode(), f"81.2.69.{n % 7}", f"user-{n % 5}", None)
        for n in range(150)
    ]  # fmt: skip
    rows = json.loads(RowFormatter().to_json(records, time.time() - now, "[", "]"))
    real_now = datetime.now(UTC)
    batch, rejected = check(rows, 0, real_now)
    assert rejected == [] and batch.by_column
    expected, _ = validate_rows(rows, 0, real_now)
    same(batch.staged(), expected)
    with stack.app.app_context():
        stored = enrich(stack.engine, 1, "FastAPI", batch).requests
        same(stored, enrich(stack.engine, 1, "FastAPI", Batch.from_staged(expected, 0)).requests)
    assert {row[12] for row in stored} == {"GB"}


def batches(seed: int = 14, count: int = 160):
    """(rows, clean?) batches: half clean, half with one to three odd rows among clean ones."""
    rng = random.Random(seed)
    for number in range(count):
        rows = [clean_row(rng) for _ in range(rng.randint(1, 40))]
        clean = number % 2 == 0
        if not clean:
            for _ in range(rng.randint(1, 3)):
                rows.insert(rng.randrange(len(rows) + 1), odd_row(rng))
        yield rows, clean


def one_odd_row_each():
    """A clean batch with one odd row, for every odd value of every field (and rows that
    are no object or lack a field)."""
    rng = random.Random(3)
    odd = [{**clean_row(rng), field: value} for field, values in ODD.items() for value in values]
    odd += [None, [], "row", 5]
    odd += [{k: v for k, v in clean_row(rng).items() if k != field} for field in CLEAN]
    for row in odd:
        rows = [clean_row(rng) for _ in range(3)]
        rows.insert(rng.randrange(4), row)
        yield rows, False


def same(got: list, expected: list) -> None:
    """Equal, and of the same types (200.0 == 200 in Python, not in a database)."""
    assert got == expected
    assert [list(map(type, row)) for row in got] == [list(map(type, row)) for row in expected]


@pytest.mark.parametrize("level", [0, 1, 2])
def test_columns_and_rows_stage_and_refuse_the_same(level):
    taken = 0
    for rows, clean in [*batches(), *one_odd_row_each()]:
        expected, refused = validate_rows(rows, level, NOW)
        batch, rejected = check(rows, level, NOW)
        assert rejected == refused, rows
        same(batch.staged(), expected)
        assert len(batch) == len(expected)
        if clean:
            assert batch.by_column, rows  # the common case must not fall back
        taken += batch.by_column
    assert taken >= 80


@pytest.mark.parametrize("level", [0, 1, 2])
def test_columns_and_rows_store_the_same_rows(stack, level):
    """The stored rows, users numbered and agents resolved against a real database, and
    locations from a country database, are the same both ways."""
    key_id = 1
    with stack.app.app_context():
        for rows, _clean in [*batches(seed=level, count=60), *one_odd_row_each()]:
            batch, _ = check(rows, level, NOW)
            if not batch.by_column:
                continue
            staged = batch.staged()
            staged = Batch.from_staged(staged, level)
            expected = enrich(stack.engine, key_id, "FastAPI", staged).requests
            same(enrich(stack.engine, key_id, "FastAPI", batch).requests, expected)
            located = [row[12] for row in expected]
            if level < 2 and "8.8.8.8" in batch.ips:
                assert "US" in located  # the country database did answer
            if level > 0:
                assert {row[11] for row in expected} == {None}


def test_a_batch_of_one_odd_row_is_refused_or_repaired_row_by_row():
    rows = [clean_row(random.Random(1)) for _ in range(5)]
    rows[2]["status"] = "200"
    rows[4]["method"] = "get"
    batch, rejected = check(rows, 0, NOW)
    assert not batch.by_column
    assert rejected == [{"index": 2, "error": "status: required, an integer"}]
    assert [r[3] for r in batch.staged()][-1] == "GET"


def test_number_names_numbers_once_and_a_held_mapping_outlives_a_full_cache(stack, monkeypatch):
    from server.lake import users

    with stack.app.app_context():
        engine = stack.engine
        first = users.number_names(engine, 1, {"a", "b"})
        held = {name: first[name] for name in ("a", "b")}
        assert held == {
            name: n for (_k, name), n in users.number_users(engine, {(1, "a"), (1, "b")}).items()
        }
        assert len(set(held.values())) == 2
        monkeypatch.setattr(users, "MAX_CACHED", 3)
        other = users.number_names(engine, 2, {"c", "d", "e", "f"})  # the cache is full
        assert {name: first[name] for name in ("a", "b")} == held  # still whole for its holder
        assert users._cache[str(engine.url)].keys() == {2}
        again = users.number_names(engine, 1, {"a", "b", "g"})  # read back from the database
        assert {name: again[name] for name in ("a", "b")} == held
        assert again["g"] not in held.values()
        assert len({other[n] for n in "cdef"}) == 4


def test_countries_of_a_column_are_each_address_country(geoip_db, monkeypatch):
    from server.ingest import geo

    geo.init_geo(geoip_db)
    ips = ["8.8.8.8", None, "81.2.69.1", "10.0.0.1", "8.8.8.8", "2001:db8::5"]
    expected = ["US", None, "GB", None, "US", "DE"]
    assert geo.countries(ips) == expected
    known = [ip for ip in ips if ip]
    assert geo.countries(known) == [geo.country(ip) for ip in known]
    geo._answers.clear()  # another thread emptied the answers: looked up again
    assert geo.countries(ips) == expected


def with_extras(rng: random.Random, rows: list) -> list:
    """Rows as our client sends them with its captures: some name a consumer, some carry
    an exception, validation errors or a captured request (with a secret to mask)."""
    out = []
    for n, row in enumerate(rows):
        row = dict(row) if isinstance(row, dict) else row
        if isinstance(row, dict):
            pick = rng.random()
            if pick < 0.3:
                row["consumer"] = rng.choice(["cus_1", {"id": "cus_2", "group": "pro"}])
            elif pick < 0.4:
                frame = {"file": "app/main.py", "line": n, "function": "f", "in_app": True}
                row["exception"] = {"type": "KeyError", "message": f"'k{n}'", "stack": [frame]}
            elif pick < 0.5:
                row["validation_errors"] = [{"location": "query.limit", "type": "missing"}]
            elif pick < 0.6:
                row["request"] = {"headers": [["Authorization", "Bearer sk_9"]],
                                  "query": "token=t0k3n&page=2", "body": '{"password": "p"}',
                                  "body_type": "application/json"}  # fmt: skip
            elif pick < 0.61:
                row["consumer"] = {"name": "no id"}  # refused, by name, row by row
        out.append(row)
    return out


def test_optional_fields_go_by_column_and_stage_and_store_as_row_by_row(stack):
    """A batch whose rows carry optional fields takes the column way for its nine fields
    (the optional ones checked and masked row by row), staging and storing exactly what
    the row-by-row rules do; a bad optional field sends it row by row, refused by name."""
    from server.ingest.capture import extras_of
    from server.ingest.masking import DEFAULT
    from server.keys.api_keys import create_key

    rng = random.Random(5)
    taken = refused = 0
    with stack.engine.begin() as conn:
        key_id, _ = create_key(conn)
    with stack.app.app_context():
        for rows, _clean in [*batches(seed=9, count=80), *one_odd_row_each()]:
            rows = with_extras(rng, rows)
            expected, refusals = validate_rows(
                rows, 0, NOW, extras=lambda row: extras_of(row, DEFAULT)
            )
            batch, rejected = check(rows, 0, NOW)
            assert rejected == refusals, rows
            same(batch.staged(), expected)
            assert "sk_9" not in repr(expected) and "t0k3n" not in repr(expected)
            refused += any("consumer" in r["error"] for r in rejected)
            if not batch.by_column:
                continue
            taken += 1
            if any(set(EXTRA_FIELDS) & set(r) for r in rows):
                assert batch.extras is not None
            staged = Batch.from_staged(batch.staged(), 0)
            assert canonical(enrich(stack.engine, key_id, "FastAPI", batch)) == canonical(
                enrich(stack.engine, key_id, "FastAPI", staged)
            )
    assert taken >= 30 and refused >= 5


def canonical(stored) -> tuple:
    """A batch's stored rows with each random detail id replaced by its row's place, so
    two enrichments of the same rows compare equal and their links are compared too."""
    at = WRITE_NAMES.index("detail")
    place = {row[at]: n for n, row in enumerate(stored.requests) if row[at] is not None}
    requests = [(*row[:at], place.get(row[at]), *row[at + 1 :]) for row in stored.requests]
    linked = [
        [(*r[:3], place[r[3]], *r[4:]) for r in rows] for rows in (stored.details, stored.payloads)
    ]
    return requests, *linked


def span_rows(rows: list, labels: list):
    """`rows` as server.ingest.spans hands them over: with their times in epoch
    microseconds and each row's label key (None: checked alone)."""
    from server.ingest.spans import SpanRows

    found = SpanRows()
    found.extend(rows)
    for row, key in zip(rows, labels, strict=True):
        when = row["created_at"]
        found.micros.append(epoch_micros(when) if isinstance(when, str) else 0)
        found.labels.append(key)
    return found


def test_span_rows_check_as_the_same_rows_sent_as_json():
    """Rows of spans skip the time parse and check each distinct service/release/route
    once, yet stage, refuse and share out optional fields exactly as the same rows in a
    list; a label no row may have, or a time out of range, still refuses its row by name."""
    rng = random.Random(11)
    labels = [("shop", "1.4.2", "/v1/orders/{id}"), ("shop", "1.4.2", None), ("billing", None, "/")]
    for case in range(40):
        rows, keys = [], []
        for n in range(30):
            row = clean_row(rng)
            row["created_at"] = (NOW - timedelta(seconds=rng.randrange(86400))).isoformat()
            service, release, route = labels[n % 3]
            row.update({k: v for k, v in (("service", service), ("release", release),
                                          ("route", route)) if v})  # fmt: skip
            if n == 7:
                row["exception"] = {"type": "ValueError", "message": "bad", "stack": []}
            rows.append(row)
        if case % 4 == 1:
            rows[3]["service"] = "shöp"  # not ASCII: checked alone, kept
        if case % 4 == 2:
            rows[5]["created_at"] = "1999-12-31T23:59:59+00:00"  # before 2000: refused
        if case % 4 == 3:
            rows[9]["route"] = "x" * 300  # longer than a route may be: refused
        # Each key as server.ingest.spans makes it: from the row's own labels.
        keys = [
            None
            if "exception" in row
            else (row.get("service"), row.get("release"), row.get("route"))
            for row in rows
        ]
        plain_batch, plain_rejected = check([dict(r) for r in rows], 0, NOW)
        batch, rejected = check(span_rows(rows, keys), 0, NOW)
        assert rejected == plain_rejected
        same(batch.staged(), plain_batch.staged())
        assert batch.by_column == plain_batch.by_column == (case % 4 in (0, 1))
        if batch.by_column:
            assert batch.micros == plain_batch.micros
            assert batch.extras == plain_batch.extras
            assert batch.extras[0] is batch.extras[6]  # one checked dict for one key
        else:
            assert rejected and "index" in rejected[0]
