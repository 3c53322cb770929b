"""POST /api/deploys with only_if_changed (what our client sends when Config.app_version
is set): a deploy is recorded only when the version differs from the last one recorded
for the key and hostname; four reports at once of one version record one, on both
backends; without the flag every POST records, as before."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.helpers import payload, row


def auth(key):
    return {"X-AUTH-TOKEN": key}


def report(stack, key, version, hostname="api.example.com", **more):
    body = {"version": version, "hostname": hostname, "only_if_changed": True, **more}
    return stack.client.post("/api/deploys", json=body, headers=auth(key))


def listed(stack, key) -> list[tuple]:
    found = stack.client.get("/api/deploys", headers=auth(key)).get_json()
    return [(d["version"], d["hostname"]) for d in found]


def test_only_a_changed_version_is_recorded(stack):
    key = stack.new_key()
    first = report(stack, key, "1.0")
    assert first.status_code == 201, first.get_json()
    again = report(stack, key, "1.0", description="a restart")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert report(stack, key, "1.0", hostname="admin.example.com").status_code == 201
    assert report(stack, key, "1.0", hostname=None).status_code == 201  # every host
    assert report(stack, key, "1.1").status_code == 201
    assert report(stack, key, "1.0").status_code == 201  # a rollback is a deploy
    assert report(stack, key, "1.0").status_code == 200
    assert listed(stack, key) == [
        ("1.0", "api.example.com"), ("1.1", "api.example.com"), ("1.0", None),
        ("1.0", "admin.example.com"), ("1.0", "api.example.com"),
    ]  # fmt: skip
    # Without the flag, as before: every POST records.
    plain = {"version": "1.0", "hostname": "api.example.com"}
    assert stack.client.post("/api/deploys", json=plain, headers=auth(key)).status_code == 201
    assert len(listed(stack, key)) == 6
    bad = report(stack, key, "")
    assert bad.status_code in (400, 422) and "version" in str(bad.get_json())
    assert listed(stack, stack.new_key()) == []  # each key its own


def test_four_workers_starting_at_once_record_one(stack):
    key = stack.new_key()
    # The key in the header, as our client sends it; a batch makes the key active.
    stack.client.post("/api/log-request", json=payload(key, [row()]))
    clients = [stack.app.test_client() for _ in range(4)]

    def post(client):
        body = {"version": "2.0", "hostname": "api.example.com", "only_if_changed": True}
        return client.post("/api/deploys", json=body, headers=auth(key)).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(post, clients))
    assert codes == [200, 200, 200, 201]
    assert listed(stack, key) == [("2.0", "api.example.com")]
