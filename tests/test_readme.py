"""The READMEs' commands, run as a reader would paste them."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from importlib.metadata import packages_distributions

import pytest

from tests.conftest import ROOT
from tests.helpers import row
from tests.live import MakeRun, get


def code_blocks(markdown: str, section: str, language: str) -> list[str]:
    """The fenced blocks of `language` in the section whose heading is `section`."""
    body = markdown.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, re.DOTALL)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = MakeRun(tmp_path_factory.mktemp("readme"))
    run.start()
    try:
        run.wait_serving()
        yield run
    finally:
        run.kill()


def pasted(script: str, port: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The block run as a reader pastes it into a shell where PORT is the server's: the
    blocks name no port of their own (a PORT set for `make run` broke them before)."""
    assert "localhost:8000" not in script, "a README block hard-codes port 8000"
    environ = {**os.environ, "PORT": port}
    return subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=timeout, env=environ
    )


def test_the_using_it_commands_work_pasted_as_is(served):
    (script,) = code_blocks((ROOT / "README.md").read_text(), "Using it", "sh")
    port = served.env["PORT"]
    result = pasted(script + '\necho "KEY=$KEY"', port)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '{"accepted":1,"rejected":[]}' in out
    assert '"oldest_batch_age_seconds":null' in out and '"status":"ok"' in out
    assert '"path":"/v1/users"' in out and '"hostname":"api.example.com"' in out
    assert '"name":"Shop API"' in out
    assert '"path":"/dashboard/s/' in out and '"state":"active"' in out
    key = re.search(r"KEY=([\w-]+)\s*$", out).group(1)
    assert len(key) > 30
    # The last command deleted everything and revoked the key.
    status, _ = get(f"http://127.0.0.1:{port}/api/data", {"X-AUTH-TOKEN": key})
    assert status == 401


def test_the_errors_commands_work_pasted_as_is(served):
    (script,) = code_blocks(
        (ROOT / "README.md").read_text(), "Errors, captures and consumers", "sh"
    )
    result = pasted(script, served.env["PORT"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '{"accepted":1,"rejected":[]}' in out
    assert '"type":"app.payments.CardDeclined"' in out
    assert '"message":"card declined for order {n}"' in out
    assert '"state":"resolved"' in out
    assert '"id":"cus_42"' in out and '"name":"Acme Inc"' in out
    assert '"consumer":"cus_42"' in out
    assert '"pattern":"^x-signature$"' in out
    # The occurrence's capture, masked by the server: no secret the client sent is shown.
    assert "[masked]" in out
    for secret in ("sk_live_123", "hunter2", "token=abc"):
        assert secret not in out


def test_the_alerts_commands_work_pasted_after_the_using_it_ones(served):
    """In order: "Using it" ended by deleting its key, and nothing here needs the internet."""
    readme = (ROOT / "README.md").read_text()
    (using,) = code_blocks(readme, "Using it", "sh")
    (alerts,) = code_blocks(readme, "Alerts", "sh")
    result = pasted(using + "\n" + alerts, served.env["PORT"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"kind":"error_rate"' in out and '"name":"Errors"' in out
    assert '"state":"ok"' in out
    assert '"code":4' not in out, out  # no error answer (the API's errors carry a code)


def test_the_opentelemetry_commands_work_pasted_as_is(served):
    """The OTLP/JSON export by hand; the exported variables are run by the real exporters'
    tests (tests/server/api/test_otlp_exporters.py reads them from here)."""
    variables, script = code_blocks(
        (ROOT / "README.md").read_text(), "OpenTelemetry (any language)", "sh"
    )
    assert "OTEL_EXPORTER_OTLP_HEADERS" in variables
    result = pasted(script, served.env["PORT"])
    assert result.returncode == 0, result.stderr
    # The export's answer (every span stored, nothing to report), then the row.
    assert result.stdout.startswith("{}["), result.stdout
    (row,) = json.loads(result.stdout[2:])
    assert (row["method"], row["path"], row["endpoint"], row["status"]) == (
        "GET", "/v1/orders/42", "/v1/orders/{order_id}", 200,
    )  # fmt: skip
    assert (row["service"], row["release"], row["user_id"]) == ("shop", "1.4.2", "u1")
    assert (row["response_time"], row["hostname"], row["framework"]) == (
        12, "api.example.com", "OpenTelemetry",
    )  # fmt: skip


def test_the_slo_deploy_usage_and_ingest_health_commands_work_pasted_as_is(served):
    (script,) = code_blocks(
        (ROOT / "README.md").read_text(), "SLOs, deploys, usage and ingest health", "sh"
    )
    port = served.env["PORT"]
    script = script.replace("localhost:8000", f"localhost:{port}")
    result = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"accepted":3' in out and '"index":3' in out
    assert '"name":"Orders"' in out and '"sli":66.66666666666667' in out
    assert '"5m":500.0' in out
    assert '"endpoint":"POST /v1/orders"' in out and '"version":"1.4.2"' in out
    assert "route,requests,errors,late\nPOST /v1/orders,3,1,false\n" in out
    assert '"framework":"FastAPI"' in out and '"reasons":{"status":1}' in out


def test_the_middleware_readme_names_what_its_example_needs():
    readme = (ROOT / "middleware" / "README.md").read_text()
    installs = " ".join(code_blocks(readme, "Install", "bash"))
    named = {
        word if word.startswith((".", "/")) else re.sub(r"[-_.]+", "-", word).lower()
        for line in installs.splitlines()
        if "pip install" in line
        for word in line.split("#")[0].split("pip install", 1)[1].split()
    }
    example = code_blocks(readme, "Use", "python")[0]
    modules = {
        (node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    providers = packages_distributions()
    for module in modules - {"api_analytics"}:  # ./middleware provides api_analytics
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
        assert dists & named, f"the README's pip install does not name {module} ({dists})"
    assert "./middleware" in named
    assert "uvicorn" in named and "uvicorn main:app" in readme  # what serves it
    scope: dict = {}
    exec(compile(example, "middleware/README.md", "exec"), scope)  # noqa: S102
    assert scope["app"].user_middleware, "the example adds the middleware"


def test_the_sqlite_backup_and_restore_commands_work(tmp_path):
    """README, Backup and restore: the SQLite lines, run beside a live embedded server."""
    (block,) = code_blocks((ROOT / "README.md").read_text(), "Backup and restore", "sh")
    first_line = block.split("\n\n", 1)[0]  # where backups go: BACKUP=...
    sqlite_part = block.split("# SQLite:", 1)[1].split("\n", 1)[1]
    backup, restore = sqlite_part.split("# restore: stop make run, then\n")
    backup, restore = first_line + "\n" + backup, first_line + "\n" + restore
    home = tmp_path / "home"  # the reader's ~, where the README puts backups
    environ = {**os.environ, "HOME": str(home)}

    run = MakeRun(tmp_path).start()  # DATA_DIR is tmp_path/data: the README's data/
    try:
        run.wait_serving()
        key = json.loads(post(f"{run.base}/api/keys"))["api_key"]
        body = {"api_key": key, "requests": [row(path="/kept")]}
        assert json.loads(post(f"{run.base}/api/log-request", body))["accepted"] == 1
        wait_until(lambda: len(data(run, key)) == 1)
        before = set(tmp_path.iterdir())
        subprocess.run(
            ["bash", "-e", "-c", backup], cwd=tmp_path, env=environ, check=True, timeout=60
        )
        # nothing new beside data/ (the checkout's own files): the backup is in ~
        assert set(tmp_path.iterdir()) - before <= {home}
        assert (home / "api-analytics-backup" / "analytics.db").stat().st_size > 0
        assert run.ctrl_c() == 0
    finally:
        run.kill()
    secret = (tmp_path / "data" / "secret_key").read_text()
    for name in ("analytics.db", "analytics.db-wal", "analytics.db-shm", "secret_key"):
        (tmp_path / "data" / name).unlink(missing_ok=True)  # the disk is lost
    subprocess.run(["bash", "-e", "-c", restore], cwd=tmp_path, env=environ, check=True, timeout=60)
    assert (tmp_path / "data" / "secret_key").read_text() == secret
    again = MakeRun(tmp_path).start()
    try:
        again.wait_serving()
        assert [r["path"] for r in data(again, key)] == ["/kept"]
    finally:
        again.kill()


def post(url: str, body=None) -> bytes:
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def data(run: MakeRun, key: str) -> list:
    status, body = get(f"{run.base}/api/data", {"X-AUTH-TOKEN": key})
    assert status == 200, body
    return json.loads(body)


def wait_until(condition, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_every_setting_is_in_the_readmes_table():
    """Each variable server.config reads from the environment has a row in the README's
    table (a row may name several): a setting nobody can find is one nobody can use."""
    from server.config import Config

    rows = [
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")
    ]
    named = {
        name for line in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split(" | ")[0])
    }
    internal = {"TESTING", "extra"}  # set by the test suite; a dict of further settings
    assert set(Config.model_fields) - internal - named == set()
