"""`python -m server.runtime.run` (what `make run` runs) as a real process, for the tests that need
the whole start: gunicorn and its logs, the supervisor, start-up errors, the README."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.services import free_port
from tests.conftest import ROOT

WAIT = 90  # seconds; a ceiling for slow machines, never a speed assertion


def run_env(tmp_path: Path, **settings) -> dict:
    """A clean environment: no settings of the developer's shell leak into the start."""
    keep = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "LC_ALL", "PATH"}}
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **keep,
        "PATH": f"{venv_bin}:{keep.get('PATH', '/usr/bin:/bin')}",
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": str(free_port()),
        "SEED_DEMO": "0",
        "LOG_LEVEL": "INFO",
    }
    env.update({k: str(v) for k, v in settings.items()})
    return env


class MakeRun:
    """One `make run`: its own process group, its output in a file."""

    def __init__(self, tmp_path: Path, **settings) -> None:
        self.env = run_env(tmp_path, **settings)
        self.log = tmp_path / "make-run.log"
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def start(self) -> MakeRun:
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.runtime.run"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def run_to_exit(self, timeout: float = WAIT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.runtime.run"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_serving(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make run exited:\n{self.output()}"
            if get(self.base + "/api/health")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"make run did not start serving:\n{self.output()}")

    def ctrl_c(self, timeout: float = 60) -> int:
        """What Ctrl-C in its terminal does: SIGINT to the supervisor."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Tear-down: whatever is left of this start (its own process group) goes."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def get(url: str, headers: dict | None = None) -> tuple[int | None, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, command line) of every live process (Linux)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            continue
        found[int(entry)] = (int(fields[1]), int(fields[2]), cmdline.decode(errors="replace"))
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    table = processes()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (parent, _g, _c) in table.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found
