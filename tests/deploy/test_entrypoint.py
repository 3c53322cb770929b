"""The image's entry commands, run as the containers run them, against fresh PostgreSQL + Redis.

No Docker engine here, so this runs docker/entrypoint.sh itself: `migrate` on an
empty database, then `web`, `worker` and two `scheduler`s, each with its own
temporary directory as each container has its own /tmp.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.services import free_port
from server.config import Config
from server.jobs import periodic_jobs
from tests.helpers import payload, row

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
ADMIN_TOKEN = "deploy-test-admin-token"
WAIT = 90  # seconds; a ceiling for slow machines, never a speed assertion


class Role:
    """One container: an entrypoint role as its own process group, with its own /tmp."""

    def __init__(self, role: str, env: dict, workdir: Path, replica: int = 1) -> None:
        self.name = role
        self.tmp = workdir / f"{role}{replica}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.log = self.tmp / "output.log"
        self.env = {**env, "TMPDIR": str(self.tmp)}
        self.process: subprocess.Popen | None = None

    def run(self, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ENTRYPOINT), self.name, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> Role:
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(ENTRYPOINT), self.name],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def healthcheck(self) -> int:
        return subprocess.run(
            [str(ENTRYPOINT), "healthcheck"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=30,
        ).returncode

    def stop(self) -> int | None:
        """SIGTERM, as `docker stop` sends; the process must exit by itself."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None


def wait_for(what: str, condition, role: Role | None = None):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if role is not None and role.process is not None and role.process.poll() is not None:
            pytest.fail(f"{role.name} exited while waiting for {what}:\n{role.output()}")
        time.sleep(0.25)
    pytest.fail(f"gave up waiting for {what}" + (f":\n{role.output()}" if role else ""))


def http(method: str, url: str, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


@pytest.fixture
def container_env(pg_database, redis_url, tmp_path):
    venv_bin = str(Path(sys.executable).parent)
    keep = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "LC_ALL", "PATH"}}
    return {
        **keep,
        "PATH": f"{venv_bin}:{keep.get('PATH', '/usr/bin:/bin')}",
        "APP_ENV": "production",
        "DATABASE_URL": pg_database,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "deploy-test-secret",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DATA_DIR": str(tmp_path / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
    }


def test_the_image_roles_work_together(container_env, pg_database, redis_url, tmp_path):
    from redis import Redis

    from worker.scheduler import scheduled_runs

    base = f"http://127.0.0.1:{container_env['PORT']}"
    roles: list[Role] = []
    try:
        # migrate: an empty database gets every migration head.
        migrate = Role("migrate", container_env, tmp_path).run()
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        engine = create_engine(pg_database)
        with engine.connect() as conn:
            heads = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        engine.dispose()
        from alembic.script import ScriptDirectory

        from server.cli import alembic_config

        expected = set(ScriptDirectory.from_config(alembic_config(pg_database)).get_heads())
        assert heads == expected

        # web: answers /api/health 200 and takes a batch.
        web = Role("web", container_env, tmp_path).start()
        roles.append(web)
        status, body = wait_for("/api/health", lambda: _ok(http("GET", f"{base}/api/health")), web)
        assert json.loads(body)["database"] == "ok" and json.loads(body)["queue"] == "ok"
        assert web.healthcheck() == 0
        # Production closes sign-up: a stranger's key is refused, the operator makes one.
        status, body = http("POST", f"{base}/api/keys")
        assert status == 403, body
        status, body = http(
            "POST", f"{base}/api/admin/keys", {"name": "deployed"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )  # fmt: skip
        assert status == 201, body
        key = json.loads(body)["api_key"]
        batch = payload(key, [row(path="/deployed"), row(path="/deployed", status=500)])
        status, body = http("POST", f"{base}/api/log-request", batch)
        assert status == 201, body

        def rows_arrived():
            status, body = http("GET", f"{base}/api/data", headers={"X-AUTH-TOKEN": key})
            return status == 200 and len(json.loads(body)) == 2

        # The web stored the rows itself: readable before any worker runs.
        assert rows_arrived()
        health = json.loads(http("GET", f"{base}/api/health")[1])
        assert health["queue_depth"] >= 1  # the export the batch asked for

        # worker: takes the queued jobs (the export among them).
        worker = Role("worker", container_env, tmp_path).start()
        roles.append(worker)

        def queue_drained():
            return json.loads(http("GET", f"{base}/api/health")[1])["queue_depth"] == 0

        wait_for("the worker to run the queued jobs", queue_drained, worker)
        assert rows_arrived()
        assert worker.healthcheck() == 0

        # scheduler, twice (a second replica, or a restart overlapping): one set of jobs.
        schedulers = [Role("scheduler", container_env, tmp_path, replica) for replica in (1, 2)]
        for scheduler in schedulers:
            roles.append(scheduler.start())
        for scheduler in schedulers:
            wait_for(
                "the scheduler to reconcile",
                lambda s=scheduler: "schedule reconciled" in s.output(),
                scheduler,
            )
        runs = scheduled_runs(Redis.from_url(redis_url))
        names = sorted(run.rsplit("-", 1)[0] for run in runs)
        # Every job the schedule declares has its run waiting (alerts' two since issue 16).
        declared = sorted(f"periodic-{job.name}" for job in periodic_jobs(Config.from_env({})))
        assert "periodic-alert-evaluation" in declared and "periodic-lake-export" in declared
        assert names == declared, runs

        # The operators' dashboard is up in this production configuration, behind the token.
        assert http("GET", f"{base}/admin/rq/")[0] == 401
        basic = base64.b64encode(f"ops:{ADMIN_TOKEN}".encode()).decode()
        assert (
            http("GET", f"{base}/admin/rq/", headers={"Authorization": f"Basic {basic}"})[0] == 200
        )

        # docker stop: every role exits cleanly on SIGTERM.
        for role in reversed(roles):
            assert role.stop() == 0, f"{role.name}:\n{role.output()}"
        assert web.healthcheck() != 0
        for role in roles:
            assert ADMIN_TOKEN not in role.output() and key not in role.output()
    finally:
        for role in roles:
            role.stop()


def _ok(response):
    status, body = response
    return (status, body) if status == 200 else None
