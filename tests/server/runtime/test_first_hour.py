"""A stranger's first hour with `make run`: a database it does not run on is one `error:`
line (no traceback), make adds no line of its own after it, and "started web" is said
once the server answers, not when its process forks."""

from __future__ import annotations

import subprocess
import time

from tests.conftest import ROOT
from tests.live import MakeRun, get, run_env

MYSQL = "mysql://u@127.0.0.1/x"


def test_a_mysql_url_is_one_error_line(tmp_path):
    result = MakeRun(tmp_path, DATABASE_URL=MYSQL).run_to_exit()
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "DATABASE_URL must be postgresql://" in errors[0] and "not mysql://..." in errors[0]


def test_make_adds_no_line_after_the_error_line(tmp_path):
    # -o install: the runtime is installed already (this is the suite's own venv); GEOIP_DB
    # set: no download of the country database.
    env = run_env(tmp_path, DATABASE_URL=MYSQL, GEOIP_DB=str(tmp_path / "none.mmdb"))
    env["VENV"] = str(ROOT / ".venv")
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "install", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: DATABASE_URL must be"), lines
    assert not [line for line in lines if line.startswith("make")], lines
    assert len([line for line in lines if line.startswith("error: ")]) == 1


def test_started_is_said_once_the_server_answers(tmp_path):
    run = MakeRun(tmp_path).start()
    try:
        deadline = time.monotonic() + 120
        while "started web" not in run.output():
            assert run.process.poll() is None, run.output()
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.05)
        status, _body = get(run.base + "/api/health")
        assert status in (200, 503), run.output()  # it answers the moment it says so
        assert "press Ctrl-C" in run.output() or _wait_for(run, "press Ctrl-C")
    finally:
        run.ctrl_c()


def _wait_for(run, text: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in run.output():
            return True
        time.sleep(0.1)
    return False
