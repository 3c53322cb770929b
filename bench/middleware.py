"""What the middleware costs the host API: throughput and latency against a bare app.

FastAPI (the default shown below), and with `--framework flask` / `--framework django`
a hello-world Flask or Django app under gunicorn with one sync worker (the WSGI set-up
most deployments use), whose variants are bare, ours, noop (a WSGI recorder doing the
least) and published (the `api-analytics` package's module for the framework). With no
`--framework`, all three run one after another (what `make bench` does).

Hello-world FastAPI under uvicorn (one worker, pinned to one core with taskset), load from
wrk pinned to the other core, variants alternated round by round in one session:

  bare     no middleware
  ours     api_analytics.fastapi from middleware/, sending to a local sink that answers 201
  noop     a pure-ASGI recorder (time, status, append to a list): the floor for any
           analytics middleware
  hosted   the hosted service's published client (PyPI `fastapi-analytics`), pointed at a
           closed loopback port

Prints the median req/s, p50 and p99 of each, the ratios (the median of per-round
ratios with a 95 % bootstrap interval), and whether ours meets its targets (>= 0.97 x
noop, >= 2.5 x hosted, p99 <= noop's + 1 ms) and by a margin the interval clears.

uvicorn runs as installed with `pip install "fastapi[standard]"` (FastAPI's documented
install), which brings uvloop and httptools; `--plain` runs it on asyncio's own loop and
h11, as a bare `pip install uvicorn` does. The report names the stack it measured.

    python bench/middleware.py            # 5 rounds of 10 s after a 3 s warm-up each
    python bench/middleware.py --plain    # the same on uvicorn without its extras
    python bench/middleware.py --quick    # one short round, to check the set-up
    python bench/middleware.py --corun --variants ours,ours_b,noop  # all at once on the
                                               # server core, with an A/A pair
    python bench/middleware.py --instructions  # instructions per request under valgrind:
                                               # unmoved by other load on the machine
    python bench/middleware.py --framework flask --corun --variants ours,ours_b,noop,published
    python bench/middleware.py --framework fastapi --corun --variants ours,ours_ref,noop \
        --ref main                             # ours against the code of a git ref, A/B
                                               # (ours_capture_ref: the same, capturing)
    python bench/middleware.py --corun --variants ours,ours_capture,noop  # ours logging
        # headers and 1 KiB JSON bodies both ways, with a consumer mapper (every variant
        # then serves that POST: bench/middleware_payload.py); target >= 0.90 x noop
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import middleware_payload  # noqa: E402
from bench.services import free_port  # noqa: E402

BENCH_DIR = ROOT / "bench"
MIDDLEWARE_DIR = ROOT / "middleware"
HOSTED_DIST = "fastapi-analytics"
HOSTED_VERSION = "1.2.5"
# The published package with a module per framework (Flask, Django, Tornado, FastAPI).
PUBLISHED_DIST = "api-analytics"
PUBLISHED_VERSION = "1.2.7"
FRAMEWORKS = ["fastapi", "flask", "django"]
DEFAULT_VARIANTS = ["bare", "ours", "noop", "hosted"]
WSGI_VARIANTS = ["bare", "ours", "noop", "published"]
# ours_mappers: ours with the seed's lambda mappers; ours_b: a second copy of ours, so
# `--corun --variants ours,ours_b` (an A/A run) shows how far identical code reads apart;
# ours_ref: the middleware as it is at `--ref` (e.g. main), an A/B run against it;
# ours_capture: ours logging both sides of each exchange (bench/middleware_payload.py);
# ours_capture_ref: the same with the middleware as it is at `--ref`.
CAPTURE_VARIANTS = ("ours_capture", "ours_capture_ref")
REF_VARIANTS = ("ours_ref", "ours_capture_ref")
ALL_VARIANTS = [*DEFAULT_VARIANTS, "ours_mappers", "ours_b", "ours_ref", *CAPTURE_VARIANTS]
ALL_WSGI_VARIANTS = [*WSGI_VARIANTS, "ours_b", "noop_mw", "ours_ref", *CAPTURE_VARIANTS]
BOOTSTRAP_RESAMPLES = 10_000

INSTRUCTION_RUNS = (500, 2500)
TARGET_VS_NOOP = 0.97
TARGET_VS_HOSTED = 2.5
# Against the published module: 1.5 x, where it is itself that much slower than the no-op.
TARGET_VS_PUBLISHED = 1.5
TARGET_P99_SLACK_MS = 1.0


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str = ""
    cpu_us: float = 0.0  # server CPU (all threads) per request during the measured run
    bg_cpu_us: float = 0.0  # the part of it in threads other than the event loop's


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, variant: str, attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in self.runs[variant])

    def paired_ratio(self, variant: str, other: str) -> float:
        """Median of the per-round throughput ratios: runs of one round are minutes
        apart at most, so a slow drift in the machine's other load cancels out."""
        return statistics.median(self.round_ratios(variant, other))

    def round_ratios(self, variant: str, other: str) -> list[float]:
        pairs = zip(self.runs[variant], self.runs[other], strict=False)
        return [a.rps / b.rps for a, b in pairs]


def median_interval(values: list[float]) -> tuple[float, float]:
    """A 95 % bootstrap interval for the median of `values` (seeded: reproducible).

    One round's ratio spreads by a few per cent on this machine while the targets are
    a per cent or two apart, so a verdict needs to say how sure the median is.
    """
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_RESAMPLES)
    )
    return medians[int(0.025 * BOOTSTRAP_RESAMPLES)], medians[int(0.975 * BOOTSTRAP_RESAMPLES) - 1]


def ratio_line(name: str, values: list[float], digits: int = 3) -> tuple[str, float]:
    """`name = median (95 % low-high)` of per-round ratios, and the interval's low end."""
    median = statistics.median(values)
    if len(values) < 2:
        return f"{name:<17}= {median:.{digits}f}  (one round: no interval)", median
    low, high = median_interval(values)
    return f"{name:<17}= {median:.{digits}f}  (95 % {low:.{digits}f}-{high:.{digits}f})", low


def ratio_verdict(name: str, values: list[float], target: float, digits: int = 3) -> bool:
    """Print the median of per-round ratios, its 95 % interval and the verdict on `target`:
    met when the median reaches it, and whether the whole interval does."""
    line, low = ratio_line(name, values, digits)
    median = statistics.median(values)
    if median < target:
        sureness = ""
    elif len(values) < 2:
        sureness = "(one round: run more to be sure)"
    elif low >= target:
        sureness = "(the 95 % interval clears it)"
    else:
        sureness = "(but the 95 % interval reaches below it: run more rounds)"
    return _verdict(line, median >= target, f">= {target}", sureness)


# --------------------------------------------------------------------------- set-up


def hosted_client_dir(workdir: Path) -> Path:
    """A directory holding only the hosted client's `api_analytics`, for PYTHONPATH.

    Both packages are called `api_analytics`, so the hosted one is never imported from
    the shared site-packages: its installed files are copied (after checking them
    against the wheel's RECORD hashes), or installed from PyPI into this directory.
    """
    target = workdir / "hosted"
    package = target / "api_analytics"
    package.mkdir(parents=True)
    try:
        dist = importlib.metadata.distribution(HOSTED_DIST)
        files = [f for f in dist.files or [] if f.parts[0] == "api_analytics" and f.suffix == ".py"]
        for file in files:
            data = Path(dist.locate_file(file)).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            if file.hash is None or digest.decode() != file.hash.value:
                raise ValueError(f"{file} differs from the {HOSTED_DIST} wheel")
            (package / file.name).write_bytes(data)
        if not files:
            raise ValueError("no files")
        print(f"hosted client: {HOSTED_DIST} {dist.version} (copied from site-packages)")
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError) as exc:
        print(f"hosted client: installed copy unusable ({exc}); installing from PyPI")
        shutil.rmtree(target)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(target), f"{HOSTED_DIST}=={HOSTED_VERSION}"],
            check=True,
        )  # fmt: skip
    return target


def published_dir(workdir: Path) -> Path:
    """A directory holding only the published `api-analytics` package, for PYTHONPATH
    (its name is ours too, so it is never installed in the project's virtualenv)."""
    target = workdir / "published"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), f"{PUBLISHED_DIST}=={PUBLISHED_VERSION}"],
        check=True,
    )  # fmt: skip
    print(f"published module: {PUBLISHED_DIST} {PUBLISHED_VERSION} (requests from the venv)")
    return target


def ref_dir(workdir: Path, ref: str) -> Path:
    """The middleware package as it is at git `ref`, for the ours_ref variant."""
    target = workdir / "ref"
    package = target / "api_analytics"
    package.mkdir(parents=True)
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{ref}:middleware/api_analytics"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in listing:
        if name.endswith(".py"):
            data = subprocess.run(
                ["git", "show", f"{ref}:middleware/api_analytics/{name}"],
                cwd=ROOT, check=True, capture_output=True,
            ).stdout  # fmt: skip
            (package / name).write_bytes(data)
    print(f"ours_ref: middleware/api_analytics at {ref}")
    return target


def pythonpath_for(variant: str, dirs: dict[str, Path]) -> str:
    first = {
        "ours": MIDDLEWARE_DIR,
        "ours_b": MIDDLEWARE_DIR,
        "ours_mappers": MIDDLEWARE_DIR,
        "ours_capture": MIDDLEWARE_DIR,
        "hosted": dirs.get("hosted"),
        "published": dirs.get("published"),
        "ours_ref": dirs.get("ref"),
        "ours_capture_ref": dirs.get("ref"),
    }
    paths = [str(first[variant])] if first.get(variant) else []
    return os.pathsep.join([*paths, str(BENCH_DIR)])


def check_tools(args: argparse.Namespace) -> None:
    uvicorn_stack(args)
    for tool in ("valgrind", "taskset") if args.instructions else ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")
    cores = os.sched_getaffinity(0)
    if {args.server_core, args.wrk_core} - cores or args.server_core == args.wrk_core:
        sys.exit(f"need two distinct usable cores; this process may use {sorted(cores)}")


def uvicorn_stack(args: argparse.Namespace) -> list[str]:
    """uvicorn's --loop/--http options for the stack measured (see the module docstring)."""
    if args.plain:
        return ["--loop", "asyncio", "--http", "h11"]
    missing = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"{', '.join(missing)} missing: pip install 'uvicorn[standard]', or use --plain")
    return ["--loop", "uvloop", "--http", "httptools"]


def server_name(args: argparse.Namespace) -> str:
    if getattr(args, "framework", "fastapi") != "fastapi":
        return stack_name(args)
    return f"uvicorn with {stack_name(args)}"


def stack_name(args: argparse.Namespace) -> str:
    if getattr(args, "framework", "fastapi") != "fastapi":
        return f"{args.framework.capitalize()} on gunicorn, 1 sync worker"
    return "asyncio + h11" if args.plain else "uvloop + httptools"


def niced(args: argparse.Namespace) -> list[str]:
    return ["nice", "-n", str(args.nice)] if args.nice else []


@contextlib.contextmanager
def sink(args: argparse.Namespace):
    """The local ingest stand-in, on wrk's core so it takes no time from the server's.

    It runs only when wrk's core is otherwise idle (SCHED_IDLE, and ten steps nicer where
    that is missing), so that wrk, whose clock measures the latencies, never waits for it.
    """
    port = free_port()
    process = subprocess.Popen(
        ["nice", "-n", str(args.nice + 10), "taskset", "-c", str(args.wrk_core), sys.executable,
         str(BENCH_DIR / "middleware_sink.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        if process.stdout.readline().strip() != "ready":
            sys.exit("the sink did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def sink_rows(url: str) -> int:
    with urllib.request.urlopen(url + "/count", timeout=5) as response:
        return json.load(response)["rows"]


def variant_env(variant: str, dirs: dict[str, Path], sink_url: str, framework: str = "fastapi"):
    """Environment of a variant's server: which middleware, which api_analytics, where to."""
    closed_port = free_port()  # nothing listens here: the hosted client's server_url
    foreign = variant in ("hosted", "published")
    return {
        **os.environ,
        "BENCH_FRAMEWORK": framework,
        "BENCH_VARIANT": variant,
        "BENCH_SINK_URL": f"http://127.0.0.1:{closed_port}" if foreign else sink_url,
        "PYTHONPATH": pythonpath_for(variant, dirs),
    }


@contextlib.contextmanager
def serve(variant: str, args: argparse.Namespace, dirs: dict[str, Path], sink_url: str):
    """One server worker for the variant, pinned to the server core, stopped gracefully:
    uvicorn for FastAPI, gunicorn with one sync worker for Flask and Django."""
    port = free_port()
    env = variant_env(variant, dirs, sink_url, args.framework)
    pinned = [*niced(args), "taskset", "-c", str(args.server_core), sys.executable, "-m"]
    if args.framework == "fastapi":
        command = [
            *pinned, "uvicorn", "middleware_app:app", "--host", "127.0.0.1", "--port",
            str(port), "--workers", "1", "--log-level", "warning", "--no-access-log",
            *uvicorn_stack(args),
        ]  # fmt: skip
        stop_signal = signal.SIGINT  # graceful: lifespan shutdown, final flush
    else:
        command = [
            *pinned, "gunicorn", "middleware_wsgi_app:app", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--worker-class", "sync", "--log-level", "warning",
        ]  # fmt: skip
        stop_signal = signal.SIGTERM  # gunicorn's graceful stop: the worker flushes at exit
    process = subprocess.Popen(command, env=env, cwd=BENCH_DIR, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                sys.exit(f"the {variant} server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"the {variant} server did not start")
                time.sleep(0.1)
        yield url, worker_pid(process.pid)
    finally:
        process.send_signal(stop_signal)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_pid(pid: int) -> int:
    """The process serving requests: gunicorn's single worker, or uvicorn itself."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + 10
    while children.exists() and time.monotonic() < deadline:
        found = children.read_text().split()
        if found:
            return int(found[0])
        if "gunicorn" not in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
        time.sleep(0.05)
    return pid


# --------------------------------------------------------------------------- measuring

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unknown latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = [
        line.strip() for line in output.splitlines() if "Socket errors" in line or "Non-2xx" in line
    ]
    return Run(rps, p50, p99, requests, "; ".join(errors))


def wrk(url: str, seconds: int, args: argparse.Namespace) -> Run:
    return wrk_all([url], seconds, args)[0]


def wrk_all(urls: list[str], seconds: int, args: argparse.Namespace) -> list[Run]:
    """One wrk per URL, all on wrk's core at the same time."""
    command = [*niced(args), "taskset", "-c", str(args.wrk_core), "wrk", f"-t{args.threads}",
               f"-c{args.connections}", f"-d{seconds}s", "--latency"]  # fmt: skip
    if getattr(args, "script", None):  # the POST of ours_capture, for every variant
        command += ["-s", str(args.script)]
    processes = [
        subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for url in urls
    ]
    runs = []
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            sys.exit(f"wrk failed: {stderr or stdout}")
        runs.append(parse_wrk(stdout))
    return runs


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of a process: all its threads, and all but the main one (the
    event loop's): for ours, that is the flusher thread (uvloop's idle pool aside)."""

    def seconds(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    threads = main = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread may end meanwhile
            cpu = seconds(task / "stat")
            threads += cpu
            if task.name == str(pid):
                main = cpu
    return threads, threads - main


def measure(variant: str, args, dirs: dict[str, Path], sink_url: str) -> tuple[Run, str]:
    before = sink_rows(sink_url)
    with serve(variant, args, dirs, sink_url) as (url, pid):
        if args.warmup > 0:
            wrk(url, args.warmup, args)
        cpu_before, bg_before = cpu_seconds(pid)
        run = wrk(url, args.duration, args)
        # CPU per request moves less than req/s when other processes compete for the
        # core: a cross-check of the throughput ratios on a busy machine.
        cpu_after, bg_after = cpu_seconds(pid)
        run.cpu_us = (cpu_after - cpu_before) / max(run.requests, 1) * 1e6
        run.bg_cpu_us = (bg_after - bg_before) / max(run.requests, 1) * 1e6
    note = ""
    if variant.startswith("ours"):
        # Warm-up, measured run and readiness probe all went through our middleware.
        note = f" | sink got {sink_rows(sink_url) - before:,} rows"
    return run, note


def instructions_per_request(variant: str, args, dirs: dict[str, Path], sink_url: str) -> float:
    """User-space instructions the server process (all threads) executes per request.

    Two runs under valgrind (cachegrind, no cache simulation), of 500 and 2,500
    sequential keep-alive requests; the difference cancels start-up and shutdown.
    Other load on the machine does not change it, unlike req/s and CPU time.
    """
    totals = []
    for count in INSTRUCTION_RUNS:
        port = free_port()
        # A fixed hash seed: with a random one the same code's count moves by ~1 %.
        env = {**variant_env(variant, dirs, sink_url), "PYTHONHASHSEED": "0"}
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, "-m", "uvicorn", "middleware_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log", *uvicorn_stack(args),
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, cwd=BENCH_DIR, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while True:  # a bare TCP connect: an HTTP probe would add requests to the count
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the {variant} server did not start under valgrind")
                time.sleep(0.5)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(count):
            connection.request("GET", "/", headers={"User-Agent": "wrk"})
            connection.getresponse().read()
        connection.close()
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=300)[1]
        match = re.search(r"I\s+refs:\s+([\d,]+)", stderr)
        if not match:
            sys.exit(f"no instruction count from valgrind for {variant}: {stderr[-500:]}")
        totals.append(int(match.group(1).replace(",", "")))
    return (totals[1] - totals[0]) / (INSTRUCTION_RUNS[1] - INSTRUCTION_RUNS[0])


def run_instructions(args, dirs: dict[str, Path], sink_url: str) -> int:
    counts = {}
    for number, variant in enumerate(args.variants, 1):
        counts[variant] = instructions_per_request(variant, args, dirs, sink_url)
        count = counts[variant]
        print(f"[{number}/{len(args.variants)}] {variant:<13}{count:>12,.0f} instructions/request")
    print()
    print(f"Instructions per request (user space, server process, all threads; {stack_name(args)})")
    for variant, count in counts.items():
        line = f"  {variant:<13}{count:>12,.0f}"
        if "bare" in counts:
            line += f"   bare/this {counts['bare'] / count:6.3f}"
        if "ours" in counts and variant != "ours":
            line += f"   this/ours {count / counts['ours']:6.3f}"
        print(line)
    print("(A proxy for CPU cost: kernel time and cache misses are not in it, which is why the")
    print(" hosted client's task-per-request overhead shows smaller here than in req/s.)")
    return 0


def run_corun(args, dirs: dict[str, Path], sink_url: str) -> int:
    """Every variant at once on the server core, each loaded by its own wrk.

    The kernel shares the core fairly between the servers (each is its own session, so
    its own scheduling group), so their throughputs stand in the ratio of their CPU costs
    per request, and whatever else slows the machine slows them all at the same moment:
    a cross-check of the alternated runs that other load barely moves.
    """
    others = [v for v in args.variants if v != "ours"]
    if "ours" not in args.variants or not others:
        sys.exit("--corun needs ours and at least one other variant")
    ratios: dict[str, list[float]] = {v: [] for v in others}
    rounds: list[dict[str, Run]] = []
    for round_number in range(args.rounds):
        # Start the servers and their wrk in a rotating order: the same code run in two
        # slots (an A/A co-run) read 0.993, so the order may matter by that much.
        shift = round_number % len(args.variants)
        order = args.variants[shift:] + args.variants[:shift]
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(serve(v, args, dirs, sink_url))[0] for v in order]
            if args.warmup > 0:
                wrk_all(urls, args.warmup, args)
            runs = dict(zip(order, wrk_all(urls, args.duration, args), strict=True))
        rounds.append(runs)
        line = "  ".join(f"{v} {runs[v].rps:,.0f}" for v in args.variants)
        for other in others:
            ratios[other].append(runs["ours"].rps / runs[other].rps)
        mine = "  ".join(f"ours/{o} {ratios[o][-1]:.3f}" for o in others)
        print(f"[{round_number + 1}/{args.rounds}] req/s: {line}  |  {mine}", flush=True)
    print()
    print(
        f"Co-run on core {args.server_core} ({stack_name(args)}), {args.rounds} round(s) of "
        f"{args.duration:g} s: median of per-round ratios (95 % bootstrap interval; "
        "lowest-highest round)"
    )
    ok = True
    for other in others:
        values = ratios[other]
        target = {"noop": TARGET_VS_NOOP, "hosted": TARGET_VS_HOSTED}.get(other)
        if other == "published":
            ok &= published_verdict(values, [r["noop"].rps / r["published"].rps for r in rounds]
                                    if "noop" in args.variants else None)  # fmt: skip
        elif target is None:
            print(ratio_line(f"ours / {other}", values)[0])
        else:
            ok &= ratio_verdict(f"ours / {other}", values, target)
        print(f"  {'':<15}rounds {min(values):.3f}-{max(values):.3f}")
    if "ours_capture" in args.variants and "noop" in args.variants:
        ok &= capture_verdict([r["ours_capture"].rps / r["noop"].rps for r in rounds])
    if "ours_capture_ref" in args.variants and "ours_capture" in args.variants:
        values = [r["ours_capture"].rps / r["ours_capture_ref"].rps for r in rounds]
        print(ratio_line("capture / capture at ref", values)[0])
        print(f"  {'':<15}rounds {min(values):.3f}-{max(values):.3f}")
        if "noop" in args.variants:
            values = [r["ours_capture_ref"].rps / r["noop"].rps for r in rounds]
            print(ratio_line("capture at ref / noop", values)[0])
    # Latency: every server shares the core, so all wait for their turn alike; the
    # difference of the medians of per-round p99s is what the middleware adds.
    p99 = {v: statistics.median(r[v].p99_ms for r in rounds) for v in args.variants}
    print("p99 ms (median of rounds): " + "  ".join(f"{v} {p99[v]:.2f}" for v in args.variants))
    if "noop" in p99:
        ok &= _verdict(
            f"p99 ours - noop = {p99['ours'] - p99['noop']:+.2f} ms",
            p99["ours"] <= p99["noop"] + TARGET_P99_SLACK_MS,
            f"<= +{TARGET_P99_SLACK_MS:g} ms",
        )
    write_json(args, {v: [runs[v] for runs in rounds] for v in args.variants})
    return 0 if ok else 1


def capture_verdict(values: list[float]) -> bool:
    """ours_capture / noop against its own target: capture costs what it does."""
    ok = ratio_verdict("capture / noop", values, middleware_payload.TARGET_VS_NOOP)
    print(f"  {'':<15}rounds {min(values):.3f}-{max(values):.3f}")
    return ok


def published_verdict(values: list[float], noop_over_published: list[float] | None) -> bool:
    """ours / published, with its target only where the published module is itself at
    least TARGET_VS_PUBLISHED x slower than the no-op (else no middleware could reach it)."""
    if noop_over_published is None:
        print(ratio_line("ours / published", values)[0] + "   (add noop for a verdict)")
        return True
    gap = statistics.median(noop_over_published)
    if gap < TARGET_VS_PUBLISHED:
        print(
            ratio_line("ours / published", values)[0]
            + f"   target n/a: noop / published = {gap:.3f} < {TARGET_VS_PUBLISHED}"
        )
        return True
    return ratio_verdict("ours / published", values, TARGET_VS_PUBLISHED)


def write_json(args: argparse.Namespace, runs: dict[str, list[Run]]) -> None:
    """Every run of every variant, for `--json`."""
    if not args.json:
        return
    if len(args.frameworks) > 1:  # one file per framework: name-flask.json, ...
        args = argparse.Namespace(**vars(args))
        args.json = args.json.with_name(f"{args.json.stem}-{args.framework}{args.json.suffix}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = {v: [run.__dict__ for run in variant_runs] for v, variant_runs in runs.items()}
    args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                     "runs": data}, indent=2, default=str))  # fmt: skip


# --------------------------------------------------------------------------- report


def report(results: Results, args: argparse.Namespace) -> bool:
    variants = [v for v in args.variants if results.runs.get(v)]
    print()
    print(
        f"Medians over {args.rounds} round(s) of {args.duration:g} s "
        f"(wrk -t{args.threads} -c{args.connections}; {server_name(args)} on core "
        f"{args.server_core}, wrk on core {args.wrk_core})"
    )
    print(
        f"{'variant':<14}{'req/s':>10}{'x bare':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU us/req':>12}{'bg':>6}   runs (req/s)"
    )
    bare = results.median("bare", "rps") if "bare" in variants else None
    for variant in variants:
        rps = results.median(variant, "rps")
        ratio = f"{rps / bare:.3f}" if bare else "-"
        runs = ", ".join(f"{run.rps:,.0f}" for run in results.runs[variant])
        print(
            f"{variant:<14}{rps:>10,.0f}{ratio:>9}"
            f"{results.median(variant, 'p50_ms'):>9.2f}{results.median(variant, 'p99_ms'):>9.2f}"
            f"{results.median(variant, 'cpu_us'):>12.1f}"
            f"{results.median(variant, 'bg_cpu_us'):>6.2f}   {runs}"
        )
    print("(bg: CPU us/req in threads other than the event loop's: ours' flusher thread)")
    ok = True
    if "ours" in variants:
        print()
        ours = results.median("ours", "rps")
        ours_p99 = results.median("ours", "p99_ms")
        print(
            "ours / other: req/s medians, median of each round's req/s ratio, and the\n"
            "capacity ratio from server CPU per request (other's CPU / ours)"
        )
        for other in ("noop", "hosted", "published", "bare"):
            if other in variants:
                capacity = results.median(other, "cpu_us") / results.median("ours", "cpu_us")
                print(
                    f"  ours / {other:<7} {ours / results.median(other, 'rps'):6.3f}   "
                    f"per round {results.paired_ratio('ours', other):6.3f}   "
                    f"by CPU {capacity:6.3f}"
                )
        print()
        if "noop" in variants:
            ok &= ratio_verdict("ours / noop", results.round_ratios("ours", "noop"), TARGET_VS_NOOP)
            noop_p99 = results.median("noop", "p99_ms")
            ok &= _verdict(
                f"p99 ours - noop = {ours_p99 - noop_p99:+.2f} ms",
                ours_p99 <= noop_p99 + TARGET_P99_SLACK_MS,
                f"<= +{TARGET_P99_SLACK_MS:g} ms",
            )
        if "hosted" in variants:
            ok &= ratio_verdict(
                "ours / hosted", results.round_ratios("ours", "hosted"), TARGET_VS_HOSTED, 2
            )
        if "ours_capture" in variants and "noop" in variants:
            ok &= capture_verdict(results.round_ratios("ours_capture", "noop"))
        if "published" in variants:
            ok &= published_verdict(
                results.round_ratios("ours", "published"),
                results.round_ratios("noop", "published") if "noop" in variants else None,
            )
    return ok


def _verdict(line: str, passed: bool, target: str, sureness: str = "") -> bool:
    print(f"{line:<50} target {target:<6} {'met' if passed else 'MISSED'} {sureness}".rstrip())
    return passed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each")
    parser.add_argument("--rounds", type=int, default=5, help="runs of every variant")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--wrk-core", type=int, default=1)
    parser.add_argument(
        "--variants", default="",
        help=f"comma-separated: for fastapi from {','.join(ALL_VARIANTS)} (default "
        f"{','.join(DEFAULT_VARIANTS)}); for flask and django from "
        f"{','.join(ALL_WSGI_VARIANTS)} (default {','.join(WSGI_VARIANTS)})",
    )  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=0,
        help="run uvicorn, wrk and the sink at this niceness (e.g. -10 on a shared machine)",
    )  # fmt: skip
    parser.add_argument(
        "--plain", action="store_true",
        help="uvicorn on asyncio + h11 (no uvloop/httptools), as a bare `pip install uvicorn`",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s: a smoke run")
    parser.add_argument(
        "--instructions", action="store_true",
        help="instead of wrk, count instructions per request under valgrind (load-proof)",
    )  # fmt: skip
    parser.add_argument(
        "--corun", action="store_true",
        help="run the variants at the same time on the server core, each with its own wrk "
        "(a cross-check that other load on the machine barely moves)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    parser.add_argument(
        "--framework", default=",".join(FRAMEWORKS),
        help=f"comma-separated, from {','.join(FRAMEWORKS)} (default: all, one after another)",
    )  # fmt: skip
    parser.add_argument("--ref", help="git ref whose middleware the ours_ref variant runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3, 1, 1
    args.variants = [v.strip() for v in (args.variants or "").split(",") if v.strip()]
    args.frameworks = [f.strip() for f in args.framework.split(",") if f.strip()]
    if set(args.frameworks) - set(FRAMEWORKS):
        parser.error(f"unknown framework in {args.framework!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools(args)
    failed = []
    for framework in args.frameworks:
        run_args = argparse.Namespace(**vars(args))
        run_args.framework = framework
        run_args.variants = args.variants or (
            DEFAULT_VARIANTS if framework == "fastapi" else WSGI_VARIANTS
        )
        allowed = ALL_VARIANTS if framework == "fastapi" else ALL_WSGI_VARIANTS
        unknown = set(run_args.variants) - set(allowed)
        if unknown:
            sys.exit(f"unknown variants for {framework}: {', '.join(sorted(unknown))}")
        if set(REF_VARIANTS) & set(run_args.variants) and not args.ref:
            sys.exit("ours_ref and ours_capture_ref need --ref (a git ref, e.g. main)")
        if len(args.frameworks) > 1:
            print(f"\n===== {framework} =====", flush=True)
        if run_one(run_args) != 0:
            failed.append(framework)
    return 1 if failed else 0


def run_one(args: argparse.Namespace) -> int:
    results = Results()
    total = args.rounds * len(args.variants)
    done = 0
    with tempfile.TemporaryDirectory(prefix="middleware-bench-") as workdir:
        dirs = {}
        if "hosted" in args.variants:
            dirs["hosted"] = hosted_client_dir(Path(workdir))
        if "published" in args.variants:
            dirs["published"] = published_dir(Path(workdir))
        if set(REF_VARIANTS) & set(args.variants):
            dirs["ref"] = ref_dir(Path(workdir), args.ref)
        if set(CAPTURE_VARIANTS) & set(args.variants):
            args.script = middleware_payload.wrk_script(Path(workdir))
            print(f"every variant serves POST {middleware_payload.PATH} with a 1 KiB JSON body")
        with sink(args) as sink_url:
            if args.instructions:
                if args.framework != "fastapi":
                    sys.exit("--instructions measures the FastAPI app only")
                return run_instructions(args, dirs, sink_url)
            if args.corun:
                return run_corun(args, dirs, sink_url)
            for round_number in range(args.rounds):
                # Rotate the order so no variant always runs first or after the same one.
                shift = round_number % len(args.variants)
                for variant in args.variants[shift:] + args.variants[:shift]:
                    done += 1
                    run, note = measure(variant, args, dirs, sink_url)
                    results.runs.setdefault(variant, []).append(run)
                    errors = f" | {run.errors}" if run.errors else ""
                    print(
                        f"[{done:>2}/{total}] round {round_number + 1} {variant:<13}"
                        f"{run.rps:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                        f"p99 {run.p99_ms:6.2f} ms  CPU {run.cpu_us:6.1f} us/req "
                        f"(bg {run.bg_cpu_us:4.2f}){note}{errors}",
                        flush=True,
                    )
    write_json(args, results.runs)
    return 0 if report(results, args) else 1


if __name__ == "__main__":
    sys.exit(main())
