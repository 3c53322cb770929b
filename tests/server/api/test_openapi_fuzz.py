"""Schemathesis against our own /api/openapi.json: whatever it sends, never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import postgres_stack, sqlite_stack

EXAMPLES = 25


# Every operation of the API, 25 cases each, in one test: longer than the default limit.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_server_errors(request, backend, tmp_path, geoip_db):
    # MONITOR_ALLOW_PRIVATE: the generated monitor URLs are not resolved, so no test
    # traffic leaves 127.0.0.1 (the SSRF guard has tests of its own).
    if backend == "sqlite":
        stack = sqlite_stack(tmp_path, GEOIP_DB=geoip_db, MONITOR_ALLOW_PRIVATE=True)
    else:
        pg, redis = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
        stack = postgres_stack(pg, redis, tmp_path, GEOIP_DB=geoip_db, MONITOR_ALLOW_PRIVATE=True)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", stack.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case):
            # A fresh valid key per case, so DELETE /api/data cannot starve later cases.
            key = stack.new_key()
            case.headers = {**(case.headers or {}), "X-AUTH-TOKEN": key}
            if isinstance(case.body, dict) and "api_key" in case.body:
                case.body["api_key"] = key
            response = case.call_and_validate(checks=[not_a_server_error])
            assert response.status_code < 500, response.text[:300]
            if case.method.upper() != "GET":  # a read asks for no job (each run costs a worker)
                stack.process_jobs()

        run()
