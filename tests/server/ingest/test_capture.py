"""The optional fields of a logged request (docs/capture.md): stored in their datasets,
grouped, attributed to consumers, refused by name when malformed, and masked again by
the server, so a secret a client forgot to mask is found in no byte of any store or log.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from server.keys.api_keys import lookup_key
from server.lake.export import flush
from server.lake.layout import DETAILS, PAYLOADS
from server.lake.source import open_rows
from server.models import consumers, error_groups, ingest_batches
from tests.helpers import post_batch, row, web_write_fails

SECRETS = {
    "authorization": "Bearer sk_live_AUTHSECRET0001",
    "cookie": "session=COOKIESECRET0002",
    "password": "PASSWORDSECRET0003",
    "token": "TOKENSECRET0004",
}


def exception(message="order 1881 not found", line=31, kind="app.errors.NotFound"):
    return {
        "type": kind,
        "message": message,
        "stack": [
            {"file": "app/main.py", "line": line, "function": "show", "in_app": True},
            {"file": "/usr/lib/python3/site-packages/lib.py", "line": 9, "function": "get",
             "in_app": False},
        ],
    }  # fmt: skip


def captured_row(**extra):
    """A row as a client that forgot to mask would send it: every secret in the clear."""
    return row(
        status=500,
        consumer={"id": "cus_1", "name": "Acme", "group": "enterprise"},
        exception=exception(),
        request={
            "headers": [["Authorization", SECRETS["authorization"]], ["Cookie", SECRETS["cookie"]],
                        ["Content-Type", "application/json"]],
            "query": f"page=2&token={SECRETS['token']}",
            "body": json.dumps({"email": "a@b.c", "password": SECRETS["password"],
                                "nested": {"card": {"number": "4242"}}}),
            "body_type": "application/json",
            "body_size": 90,
        },
        response={"headers": [["content-type", "application/json"]], "body": '{"error": 1}',
                  "body_type": "application/json", "body_size": 12},
        **extra,
    )  # fmt: skip


def key_id_of(stack, key) -> int:
    with stack.engine.connect() as conn:
        return lookup_key(conn, key)


def dataset_rows(key_id, dataset):
    with open_rows(key_id, dataset=dataset) as rows:
        frame = rows.frame("SELECT * FROM {rows} ORDER BY id")
    return frame.to_dict("records")


def test_optional_fields_are_stored_grouped_and_attributed(stack):
    key = stack.new_key()
    rows = [
        captured_row(),
        row(status=500, exception=exception("order 77 not found"), consumer="cus_2"),
        row(status=500, exception=exception(kind="KeyError", message="'x'")),
        row(
            status=422,
            validation_errors=[{"location": "body.items.0.price", "type": "int_parsing"}],
        ),  # fmt: skip
        row(),
    ]
    answer = post_batch(stack.client, key, rows)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json() == {"accepted": 5, "rejected": []}
    stack.process_jobs()
    key_id = key_id_of(stack, key)
    with open_rows(key_id) as stored:
        found = stored.query(
            "SELECT consumer, consumer_group, error_group, detail FROM {rows} ORDER BY id"
        ).fetchall()
    groups = [r[2] for r in found]
    # Messages differing only in their numbers are one group; another type is another.
    assert groups[0] == groups[1] and groups[2] not in (None, groups[0]) and groups[4] is None
    assert [r[0] for r in found] == ["cus_1", "cus_2", None, None, None]
    assert found[0][1] == "enterprise"
    assert [r[3] is not None for r in found] == [True, True, True, True, False]
    details = dataset_rows(key_id, DETAILS)
    assert len(details) == 4
    assert json.loads(details[3]["validation"]) == [["body.items.0.price", "int_parsing"]]
    assert json.loads(details[0]["stack"])[0] == ["app/main.py", 31, "show", True]
    payloads = dataset_rows(key_id, PAYLOADS)
    assert len(payloads) == 1 and payloads[0]["detail"] == found[0][3]
    request = json.loads(payloads[0]["request"])
    assert ["authorization", "[masked]"] in request["headers"]
    assert "token=%5Bmasked%5D" in request["query"] or "token=[masked]" in request["query"]
    body = json.loads(request["body"])
    assert body["password"] == "[masked]" and body["nested"]["card"] == "[masked]"
    with stack.engine.connect() as conn:
        group = conn.execute(select(error_groups).where(error_groups.c.id == groups[0])).one()
        people = conn.execute(
            select(consumers).where(consumers.c.key_id == key_id).order_by(consumers.c.consumer_id)
        ).all()
    assert group.type == "app.errors.NotFound" and group.state == "open"
    assert group.message == "order {n} not found"
    assert group.frame == "app/main.py:31 in show"
    assert group.route == "GET /v1/users"
    assert [(p.consumer_id, p.name, p.consumer_group) for p in people] == [
        ("cus_1", "Acme", "enterprise"),
        ("cus_2", None, None),
    ]


def test_a_malformed_optional_field_refuses_its_row_by_name_without_quoting_it(stack):
    key = stack.new_key()
    bad = {
        "consumer": {"name": "no id"},
        "exception": {"type": "E", "stack": [{"file": "a.py", "line": "x", "in_app": True}]},
        "validation_errors": "body.price",
        "request": {"headers": [["Authorization"]], "body": SECRETS["password"] * 5000},
    }
    rows = [row(**{name: value}) for name, value in bad.items()] + [row()]
    answer = post_batch(stack.client, key, rows)
    assert answer.status_code == 201
    rejected = answer.get_json()["rejected"]
    assert [r["index"] for r in rejected] == [0, 1, 2, 3]
    for refusal, name in zip(rejected, bad, strict=True):
        assert refusal["error"].startswith(name), refusal
    assert SECRETS["password"] not in json.dumps(rejected)


def test_a_resolved_group_that_occurs_again_is_reopened_as_a_regression(stack):
    from sqlalchemy import update

    from server.db import utcnow
    from server.rules import epoch_micros

    key = stack.new_key()
    post_batch(stack.client, key, [row(status=500, exception=exception())])
    key_id = key_id_of(stack, key)
    with stack.engine.begin() as conn:
        conn.execute(
            update(error_groups)
            .where(error_groups.c.key_id == key_id)
            .values(state="resolved", resolved_at=epoch_micros(utcnow()))
        )
    post_batch(stack.client, key, [row(status=500, exception=exception("order 5 not found"))])
    with stack.engine.connect() as conn:
        (group,) = conn.execute(select(error_groups).where(error_groups.c.key_id == key_id)).all()
    assert group.state == "open" and group.regressions == 1 and group.regressed_at


def every_value(path: Path):
    """Every stored value of a Parquet file, as text (its bytes are compressed)."""
    con = duckdb.connect()
    rows = con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM read_parquet('{path}')").fetchall()
    con.close()
    return " ".join(str(v) for r in rows for v in r)


def database_text(stack) -> str:
    """Every byte of the database: the SQLite file, or a pg_dump of the database."""
    url = stack.config.DATABASE_URL
    if url.startswith("sqlite"):
        return Path(url.removeprefix("sqlite:///")).read_bytes().decode("latin-1")
    from sqlalchemy.engine import make_url

    where = make_url(url)
    dump = shutil.which("pg_dump")
    if dump is None:
        pytest.fail("pg_dump is needed to read every byte of the database")
    return subprocess.run(
        [dump, "-h", where.host or "127.0.0.1", "-p", str(where.port or 5432), "-U",
         where.username or "postgres", where.database],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_a_secret_the_client_did_not_mask_is_in_no_store_or_log(stack, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    key = stack.new_key()
    # One batch written by the web, one staged for a worker (the fallback path), both
    # sent raw: no client masking at all.
    assert post_batch(stack.client, key, [captured_row()]).status_code == 201
    with monkeypatch.context() as patch:
        web_write_fails(patch)
        staged = post_batch(stack.client, key, [captured_row(path="/v1/staged")])
        assert staged.status_code == 201
        with stack.engine.connect() as conn:
            payloads = [bytes(p) for p in conn.execute(select(ingest_batches.c.payload)).scalars()]
        assert payloads, "the batch was not staged"
        for secret in SECRETS.values():
            assert all(secret.encode() not in p for p in payloads), secret
    stack.process_jobs()
    flush()  # into the store's files too
    stores = [database_text(stack)]
    lake = Path(stack.config.LAKE_URL)
    for path in lake.rglob("*.parquet"):
        stores.append(path.read_bytes().decode("latin-1"))
        stores.append(every_value(path))
    stores.append(caplog.text)
    for secret in SECRETS.values():
        for where, text in enumerate(stores):
            assert secret not in text, (secret, where)
    # ... while what is not secret is kept.
    assert any("a@b.c" in text for text in stores[1:])
