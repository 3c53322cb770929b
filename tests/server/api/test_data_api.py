"""Lifecycle on both backends: key -> ingest -> worker -> every data API filter -> delete."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import postgres_stack, sqlite_stack
from tests.helpers import CHROME, GOOGLEBOT, IPHONE, days_ago, post_batch, row, web_write_fails

ROWS = [
    row(hostname="api.example.com", ip_address="8.8.8.8", status=200, user_id="u1",
        created_at=days_ago(0, 1), path="/v1/users", user_agent=CHROME),
    row(hostname="api.example.com", ip_address="81.2.69.160", status=404, user_id="u2",
        created_at=days_ago(1, 2), path="/v1/users/7", method="DELETE", user_agent=IPHONE),
    row(hostname="other.example.com", ip_address="8.8.4.4", status=200, user_id="u1",
        created_at=days_ago(2, 3), path="/v2/orders", method="POST", user_agent=GOOGLEBOT),
    row(hostname="other.example.com", ip_address="5.1.2.3", status=500, user_id=None,
        created_at=days_ago(2, 4), path="/health", user_agent=None),
    row(hostname="api.example.com", ip_address=None, status=201, user_id="u3",
        created_at=days_ago(9, 5), path="/v1/items", method="PUT"),
]  # fmt: skip


def day(n: int) -> str:
    """The UTC date `n` days before the day ROWS were made on (not today's: a run crossing
    midnight between making them and asking would ask for the wrong days)."""
    made = datetime.fromisoformat(ROWS[0]["created_at"])
    return (made - timedelta(days=n)).date().isoformat()


@pytest.fixture
def loaded(stack):
    key = stack.new_key()
    response = post_batch(stack.client, key, ROWS)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"accepted": len(ROWS), "rejected": []}
    stack.process_jobs()
    return stack, key


def get(stack, key, query=""):
    return stack.client.get(f"/api/data{query}", headers={"X-AUTH-TOKEN": key})


def paths(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [r["path"] for r in response.get_json()]


def by_path_of(rows: list[dict]) -> dict:
    return {r["path"]: r for r in rows}


def test_rows_come_back_in_the_hosted_shape(loaded):
    stack, key = loaded
    rows = get(stack, key).get_json()
    assert [r["path"] for r in rows] == [
        "/v1/items",
        "/v2/orders",
        "/health",
        "/v1/users/7",
        "/v1/users",
    ]
    first = rows[-1]
    assert list(first) == [
        "hostname", "ip_address", "path", "user_agent", "method", "status", "response_time",
        "location", "user_id", "created_at", "browser", "os", "device", "framework",
        # Ours beside the hosted shape, after it (docs/capture.md): None when not sent.
        "consumer", "consumer_group",
        # The endpoint's template; an OpenTelemetry span's service and release (README.md).
        "endpoint", "service", "release",
    ]  # fmt: skip
    assert (first["consumer"], first["consumer_group"]) == (None, None)
    assert (first["endpoint"], first["service"], first["release"]) == ("/v1/users", None, None)
    assert by_path_of(rows)["/v1/users/7"]["endpoint"] == "/v1/users/{id}"
    assert first["ip_address"] == "8.8.8.8"
    assert first["location"] == "US"
    assert first["method"] == "GET"
    assert first["created_at"].endswith("+00:00")
    assert first["created_at"][:13] == ROWS[0]["created_at"][:13]
    assert (first["browser"], first["os"], first["device"]) == ("Chrome", "Windows", "desktop")
    assert first["framework"] == "FastAPI"
    by_path = {r["path"]: r for r in rows}
    assert by_path["/v1/users/7"]["device"] == "mobile"
    assert by_path["/v1/users/7"]["location"] == "GB"
    assert by_path["/v2/orders"]["device"] == "bot"
    assert by_path["/health"]["location"] == "FR"
    assert by_path["/health"]["user_agent"] is None
    assert by_path["/v1/items"]["location"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?hostname=other.example.com", ["/v2/orders", "/health"]),
        ("?status=404", ["/v1/users/7"]),
        ("?user_id=u1", ["/v2/orders", "/v1/users"]),
        ("?userID=u1", ["/v2/orders", "/v1/users"]),
        ("?userId=u3", ["/v1/items"]),
        ("?ipAddress=8.8.4.4", ["/v2/orders"]),
        ("?ip=81.2.69.160", ["/v1/users/7"]),
        ("?location=us", ["/v1/users"]),
        ("?location=FR", ["/health"]),
        ("?hostname=api.example.com&status=200&user_id=u1", ["/v1/users"]),
        ("?hostname=nowhere.example.com", []),
    ],
)
def test_every_filter(loaded, query, expected):
    stack, key = loaded
    assert paths(get(stack, key, query)) == expected


def test_date_filters_are_inclusive_utc_days(loaded):
    stack, key = loaded
    assert paths(get(stack, key, f"?date={day(2)}")) == ["/v2/orders", "/health"]
    assert paths(get(stack, key, f"?dateFrom={day(1)}")) == ["/v1/users/7", "/v1/users"]
    assert paths(get(stack, key, f"?dateTo={day(2)}")) == ["/v1/items", "/v2/orders", "/health"]
    both = f"?dateFrom={day(2)}&dateTo={day(1)}"
    assert paths(get(stack, key, both)) == ["/v2/orders", "/health", "/v1/users/7"]
    assert paths(get(stack, key, f"?dateFrom={day(1)}&dateTo={day(1)}")) == ["/v1/users/7"]


@pytest.mark.parametrize(
    "query",
    [
        "?date=9999-12-31",
        "?dateTo=9999-12-31",
        "?dateFrom=9999-12-31",
        "?date=0001-01-01",
        "?dateFrom=0001-01-01&dateTo=9999-12-31",
        "?dateFrom=0001-01-01&dateTo=0001-01-01",
    ],
)
def test_every_date_the_parser_takes_works(loaded, query):
    stack, key = loaded
    everything = "dateFrom=0001-01-01&dateTo=9999-12-31" in query or query == "?dateTo=9999-12-31"
    assert paths(get(stack, key, query)) == (paths(get(stack, key)) if everything else [])


def test_a_range_that_ends_before_it_starts_is_refused_naming_both(loaded):
    stack, key = loaded
    response = get(stack, key, f"?dateFrom={day(1)}&dateTo={day(2)}")
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert "'dateFrom'" in message and "dateTo" in message
    assert day(1) in message and day(2) in message


@pytest.mark.parametrize("query", ["?status=200&status=404", "?ip=8.8.8.8&ip=8.8.4.4"])
def test_a_repeated_parameter_is_refused_not_cut_to_its_first_value(loaded, query):
    stack, key = loaded
    response = get(stack, key, query)
    assert response.status_code == 400
    name = query[1:].split("=")[0]
    assert f"'{name}'" in response.get_json()["message"]
    assert "given 2 times" in response.get_json()["message"]


@pytest.mark.parametrize("name", ["date", "dateFrom", "dateTo"])
def test_a_bad_date_names_the_expected_format(loaded, name):
    stack, key = loaded
    message = get(stack, key, f"?{name}=27/11/2026").get_json()["message"]
    assert f"'{name}'" in message and "YYYY-MM-DD" in message


def test_compact_answers_columns_then_values(loaded):
    stack, key = loaded
    body = get(stack, key, "?compact=true&status=404").get_json()
    assert body[0][:3] == ["hostname", "ip_address", "path"]
    assert len(body) == 2
    assert body[1][2] == "/v1/users/7"


@pytest.mark.parametrize("compact", [False, True])
def test_pages_are_compact_json_that_keeps_every_character(stack, compact):
    """The page is the database's own JSON text: compact, and exact for awkward strings."""
    import json

    key = stack.new_key()
    awkward = 'q"uote \\back/slash é ☃ 😀 tab\t new\nline \u2028 \u0001'
    rows = [row(path="/" + awkward, user_id=awkward, user_agent=None, ip_address=None)]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    response = get(stack, key, "?compact=true" if compact else "")
    body = response.get_data(as_text=True)
    parsed = json.loads(body)
    if not compact or stack.backend == "sqlite":  # PostgreSQL writes arrays as `[a, b]`
        assert body == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    values = dict(zip(parsed[0], parsed[1], strict=True)) if compact else parsed[0]
    assert values["path"] == "/" + awkward
    assert values["user_id"] == awkward
    assert values["user_agent"] is None and values["ip_address"] is None
    assert values["status"] == 200 and values["response_time"] == 12


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?foo=1", "Unknown parameter 'foo'"),
        ("?status=abc", "'status'"),
        ("?status=700", "'status'"),
        ("?date=2026-13-01", "'date'"),
        ("?dateFrom=yesterday", "'dateFrom'"),
        ("?ipAddress=1.2.3", "'ipAddress'"),
        ("?location=USA", "'location'"),
        ("?page=0", "'page'"),
        ("?compact=maybe", "'compact'"),
        ("?api_key=secret", "'api_key'"),
        ("?hostname=a%00b", "'hostname'"),
    ],
)
def test_bad_parameters_are_refused_by_name(loaded, query, names):
    stack, key = loaded
    response = get(stack, key, query)
    assert response.status_code == 400
    assert names in response.get_json()["message"]


def test_the_key_is_required_and_checked(loaded):
    stack, _key = loaded
    missing = stack.client.get("/api/data")
    assert missing.status_code == 401
    assert "X-AUTH-TOKEN" in missing.get_json()["message"]
    wrong = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": "not-a-key"})
    assert wrong.status_code == 401


def test_keys_only_see_their_own_rows(loaded):
    stack, key = loaded
    other = stack.new_key()
    assert get(stack, other).get_json() == []
    assert len(get(stack, key).get_json()) == len(ROWS)


def test_delete_removes_everything_and_revokes_the_key(loaded):
    from sqlalchemy import text

    from server.keys.api_keys import lookup_key

    stack, key = loaded
    other = stack.new_key()
    assert post_batch(stack.client, other, [row()]).status_code == 201
    # A batch still waiting for a worker must go too.
    assert post_batch(stack.client, key, [row()]).status_code == 201
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    response = stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key})
    assert response.status_code == 204
    assert response.data == b"" and "Content-Type" not in response.headers
    stack.process_jobs()
    assert get(stack, key).status_code == 401
    assert post_batch(stack.client, key, [row()]).status_code == 401
    with stack.engine.connect() as conn:
        leftovers = {
            "api_keys": conn.execute(text(f"SELECT count(*) FROM api_keys WHERE id = {key_id}")),
            "requests": conn.execute(
                text(f"SELECT count(*) FROM requests WHERE key_id = {key_id}")
            ),
            "ingest_batches": conn.execute(
                text(f"SELECT count(*) FROM ingest_batches WHERE key_id = {key_id}")
            ),
        }
        leftovers = {name: result.scalar() for name, result in leftovers.items()}
    assert leftovers == {"api_keys": 0, "requests": 0, "ingest_batches": 0}
    assert len(get(stack, other).get_json()) == 1


def _paged_stack(request, tmp_path, geoip_db, backend):
    if backend == "sqlite":
        return sqlite_stack(tmp_path, GEOIP_DB=geoip_db, DATA_PAGE_SIZE=3)
    pg, redis = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
    return postgres_stack(pg, redis, tmp_path, GEOIP_DB=geoip_db, DATA_PAGE_SIZE=3)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pages_hold_every_row_exactly_once(request, tmp_path, geoip_db, backend):
    stack = _paged_stack(request, tmp_path, geoip_db, backend)
    key = stack.new_key()
    same_moment = days_ago(1)
    rows = [
        row(path=f"/p/{i}", created_at=same_moment if i % 2 else days_ago(i % 5)) for i in range(11)
    ]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    seen, page = [], 1
    while True:
        response = get(stack, key, f"?page={page}")
        body = paths(response)
        seen.extend(body)
        if "X-Next-Page" not in response.headers:
            break
        assert len(body) == 3
        page = int(response.headers["X-Next-Page"])
    assert sorted(seen) == sorted(r["path"] for r in rows)
    assert len(seen) == 11
    assert paths(get(stack, key, "?page=9")) == []


def test_delete_during_enrichment_leaves_no_orphan_rows(stack, monkeypatch):
    """DELETE /api/data landing while a worker is inside that key's batch transaction.

    The DELETE starts once the worker has claimed the batch and enriched its rows, and
    must then wait for the worker's commit (SQLite: its write lock; PostgreSQL: the
    claimed batch's row lock) before deleting, so nothing the worker wrote survives.
    """
    import threading

    from sqlalchemy import func, select

    from server.ingest import staging as enrich
    from server.keys.api_keys import lookup_key
    from server.lake.models import requests
    from server.models import ingest_batches
    from server.queue import get_queue

    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    # A staged batch, held back from the workers so the test decides when it is processed.
    web_write_fails(monkeypatch)
    monkeypatch.setattr(type(get_queue()), "enqueue", lambda *a, **k: None)
    assert post_batch(stack.client, key, [row(path="/late")]).status_code == 201
    with stack.engine.connect() as conn:
        batch_id = conn.execute(
            select(ingest_batches.c.id).where(ingest_batches.c.key_id == key_id)
        ).scalar_one()

    answers = []
    deleting = threading.Thread(
        target=lambda: answers.append(
            stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key}).status_code
        )
    )
    waited = []
    real_enrich = enrich.stored_rows

    def enrich_then_delete(*args):
        rows = real_enrich(*args)  # inside the batch transaction, the batch claimed
        deleting.start()
        deleting.join(timeout=1)
        waited.append(deleting.is_alive())  # still waiting for this transaction
        return rows

    monkeypatch.setattr(enrich, "stored_rows", enrich_then_delete)
    assert enrich.process_batch(batch_id) == 1
    deleting.join(timeout=30)
    assert waited == [True], "the DELETE did not wait for the batch: nothing raced"
    assert answers == [204]
    with stack.engine.connect() as conn:
        orphans = conn.execute(select(func.count()).where(requests.c.key_id == key_id)).scalar()
    assert orphans == 0
    assert stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key}).status_code == 401


def test_delete_during_the_webs_write_leaves_no_orphan_rows(stack, monkeypatch):
    """DELETE /api/data landing while the web is writing that key's batch: it waits for
    the write to commit (the writer holds the key row: server.lake.write.hold_key), then
    deletes those rows too."""
    import threading

    from sqlalchemy import func, select

    from server.ingest import store
    from server.keys.api_keys import lookup_key
    from server.lake.models import requests

    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    answers, waited = [], []
    deleting = threading.Thread(
        target=lambda: answers.append(
            stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key}).status_code
        )
    )
    real_store = store.write

    def store_then_delete(conn, rows):
        real_store(conn, rows)  # the rows written, not yet committed
        deleting.start()
        deleting.join(timeout=1)
        waited.append(deleting.is_alive())  # still waiting for this transaction
        return None

    monkeypatch.setattr(store, "write", store_then_delete)
    assert post_batch(stack.client, key, [row(path="/racing")]).status_code == 201
    deleting.join(timeout=30)
    assert waited == [True], "the DELETE did not wait for the write: nothing raced"
    assert answers == [204]
    with stack.engine.connect() as conn:
        orphans = conn.execute(select(func.count()).where(requests.c.key_id == key_id)).scalar()
    assert orphans == 0
    # The key is gone: its next batch is refused, not written under a dead key.
    assert post_batch(stack.client, key, [row()]).status_code == 401
