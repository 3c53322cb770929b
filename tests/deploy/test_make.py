"""`make run` on a fresh virtualenv: the runtime dependencies only, and they are enough."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import ROOT
from tests.live import get, run_env

pytestmark = pytest.mark.slow
DEV_ONLY = ("pytest", "selenium", "fastapi", "uvicorn", "schemathesis", "hypercorn", "ruff")


def test_make_run_installs_the_runtime_only_and_serves_with_it(tmp_path, geoip_db):
    venv = tmp_path / "venv"
    env = run_env(tmp_path, GEOIP_DB=geoip_db)
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while get(f"http://127.0.0.1:{env['PORT']}/api/health")[0] != 200:
            assert make.poll() is None, make.stdout.read()
            assert time.monotonic() < deadline, "make run did not serve in 4 minutes"
            time.sleep(0.5)
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in its terminal
        output = make.communicate(timeout=60)[0]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert "stopped web" in output, output
    python = str(venv / "bin" / "python")
    for module in DEV_ONLY:
        found = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed by make run"
