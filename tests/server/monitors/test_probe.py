"""One uptime check against a local server: every outcome, redirects, the deadline, the guard."""

from __future__ import annotations

import ipaddress

import pytest

from bench.services import free_port
from server.monitors.probe import MAX_REDIRECTS, probe
from server.net.urlguard import ResolveError
from tests.targets import TargetServer, self_signed_context


@pytest.fixture(scope="module")
def target():
    with TargetServer() as server:
        yield server


def check(url, method="GET", timeout=2.0, **kwargs):
    return probe(url, method, timeout=timeout, allow_private=True, **kwargs)


def test_an_answer_records_its_status_and_time(target):
    outcome = check(target.url("/ok"))
    assert (outcome.status, outcome.error) == (200, None)
    assert isinstance(outcome.response_time, int) and outcome.response_time >= 0


def test_a_500_is_an_answer_too(target):
    outcome = check(target.url("/fail"))
    assert (outcome.status, outcome.error) == (500, None)
    assert outcome.response_time is not None


def test_head(target):
    before = target.hits["/ok"]
    assert check(target.url("/ok"), "HEAD").status == 200
    assert target.hits["/ok"] == before + 1


def test_a_closed_port_is_connection_refused():
    outcome = check(f"http://127.0.0.1:{free_port()}/")
    assert (outcome.status, outcome.response_time, outcome.error) == (
        None,
        None,
        "connection refused",
    )


def test_a_server_that_hangs_is_a_timeout(target):
    outcome = check(target.url("/hang"), timeout=1)
    assert (outcome.status, outcome.error) == (None, "timeout")


def test_the_timeout_is_for_the_whole_check_not_each_read(target):
    # /drip sends a byte every 50 ms: no single read waits long, the whole takes 10 s.
    outcome = check(target.url("/drip"), timeout=1)
    assert (outcome.status, outcome.error) == (None, "timeout")


def test_the_default_timeout_is_ten_seconds():
    import inspect

    assert inspect.signature(probe).parameters["timeout"].default == 10.0
    from server.config import Config

    assert Config.from_env(environ={}, TESTING=True).MONITOR_TIMEOUT_SECONDS == 10


def test_redirects_are_followed_up_to_five(target):
    assert check(target.url(f"/redirect/{MAX_REDIRECTS - 1}")).status == 200
    assert check(target.url(f"/redirect/{MAX_REDIRECTS}")).status == 200
    too_many = check(target.url(f"/redirect/{MAX_REDIRECTS + 1}"))
    assert (too_many.status, too_many.error) == (None, "too many redirects")
    assert check(target.url("/loop")).error == "too many redirects"


def test_a_redirect_to_another_scheme_is_refused(target):
    outcome = check(target.url("/to?url=file:///etc/passwd"))
    assert (outcome.status, outcome.error) == (None, "bad redirect")


def test_a_name_that_does_not_resolve_is_dns(target):
    # DNS is the process edge here: a resolver that fails stands in for a missing name.
    def no_such_name(host, port, timeout):
        raise ResolveError(f"{host} does not resolve")

    outcome = check("http://monitored.example/", resolver=no_such_name)
    assert (outcome.status, outcome.error) == (None, "dns")


def test_a_host_name_resolves_through_every_address(target):
    # localhost may resolve to ::1 first, where nothing listens; 127.0.0.1 answers.
    assert check(target.url("/ok", host="localhost")).status == 200


def test_a_bad_certificate_is_tls(tmp_path):
    context = self_signed_context(tmp_path)
    if context is None:
        pytest.skip("no openssl binary to make a certificate")
    with TargetServer(tls_context=context) as server:
        outcome = check(server.url("/ok"))
    assert (outcome.status, outcome.error) == (None, "tls")


def test_the_guard_refuses_private_addresses_at_check_time(target):
    before = sum(target.hits.values())
    for url in (target.url("/ok"), target.url("/ok", host="localhost")):
        outcome = probe(url, timeout=2, allow_private=False)
        assert (outcome.status, outcome.error) == (None, "blocked address")
    assert sum(target.hits.values()) == before, "a refused address was contacted"


def test_every_redirect_target_is_checked_again(target):
    # Only 127.0.0.1 is allowed here, so the redirect to 127.0.0.2 must not be followed.
    only_first = ipaddress.ip_address("127.0.0.1")
    before = target.hits["/ok"]
    outcome = check(
        target.url(f"/to?url=http://127.0.0.2:{target.port}/ok"),
        address_allowed=lambda address: address == only_first,
    )
    assert (outcome.status, outcome.error) == (None, "blocked address")
    assert target.hits["/ok"] == before
    # The same redirect inside the allowed address is followed.
    allowed = check(
        target.url(f"/to?url=http://127.0.0.1:{target.port}/ok"),
        address_allowed=lambda address: address == only_first,
    )
    assert allowed.status == 200
