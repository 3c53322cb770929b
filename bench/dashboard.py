"""Dashboard benchmark: a full overview refresh over the columnar store, every filter kind.

Creates a fresh PostgreSQL database and store, loads --rows requests for one key over a
year and --other-rows for a second key (bench/lake_load.py: straight into Parquet files
and the catalog, the export job's layout), plus --hot rows in the hot table, then, in a
fresh process (whose peak RSS is reported), for every period and every filter set (none,
one click of each dimension, two clicks):

- times the refresh exactly as the page's callback runs it (dash_app.panels.refresh:
  every question, pandas shaping and Plotly figures), median of --repeats;
- checks its requests and users against an independent count (plain SQL over the files
  and hot rows, written here, not by the planner under test).

Then bytes per stored row, everything included (files, hot table, catalog, indexes).

    python bench/dashboard.py                     # 10 M + 10 M rows (about 5 minutes to load)
    python bench/dashboard.py --rows 200000 --other-rows 0 --repeats 1   # a smoke run
    python bench/dashboard.py --rows 100000000 --periods all --filters none   # 100 M rows
    python bench/dashboard.py --compare   # and each summary-answered case from the rows alone
    python bench/dashboard.py --compare-straddle --periods 30d,6m,1y   # first refreshes, the
        # month a window starts in from its summary less its earlier rows, or from its rows
    python bench/dashboard.py --errors    # the Errors and Consumers pages instead
    python bench/dashboard.py --slo-pages # the SLOs and Releases pages instead

With --errors the key's rows name 10,000 consumers (four in five rows) and about 2 % of
them failed with an exception (about 200,000 at 10 M rows, in 300 groups, their details
in the details dataset's files); the Errors page (groups, their trends and the validation
table) and the Consumers page (per consumer and per group) are timed for every period
with no click, an endpoint, a status, a consumer, a consumer group and a country, each
checked against plain SQL: every group's occurrences and the busiest consumers' requests.

With --slo-pages the key's rows name consumers (as with --errors); the SLOs page (four
30-day SLOs: SLI, budget, burn rates, each card's burn-down figure) and the Releases page
(the comparison one hour each side of a deploy three days before the load's clock, and
its table) are timed as their callbacks run them, with the release_regression rule's two
measures (after a deploy; and an open incident's check of the latest hour), each against
the overview's 30-day refresh in the same process; the SLOs' counts and the comparison's
requests and 5xx per endpoint are checked against plain SQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import fresh_database, progress  # noqa: E402

PERIODS = ("24h", "7d", "30d", "6m", "1y", "all")
TARGET_SECONDS = 1.0  # at 10 M rows for the key
TARGET_SECONDS_100M = 3.0  # at 100 M rows, all time
TARGET_RSS_MB = 500
TARGET_BYTES_PER_ROW = 50


def settings_for(url: str, data_dir: str, memory_mb: int):
    from server.config import Config

    return Config.from_env(
        {}, DATABASE_URL=url, DATA_DIR=data_dir, TESTING=True, ENGINE_MEMORY_MB=memory_mb
    )


def bind(settings):
    from server.config import use_config
    from server.db import init_engine
    from server.queue import init_queue

    use_config(settings)
    init_queue("")
    return init_engine(settings.DATABASE_URL)


# --- filter sets (values picked from the data by plain SQL) --------------------------------


def filter_sets(rows_sql, cur, which: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(name, clicks)]: no click, one click of each dimension, two clicks."""

    def top(expr: str, where: str = "true") -> str:
        return cur.execute(
            f"SELECT {expr} AS v, count(*) n FROM {rows_sql} WHERE {where} "
            "GROUP BY v ORDER BY n DESC, v LIMIT 1"
        ).fetchone()[0]

    endpoint = top("method || ' ' || endpoint")
    user = top("coalesce(ip_address, user_id)", "coalesce(ip_address, user_id) IS NOT NULL")
    country = top("coalesce(location, '')")
    browser = top("coalesce(browser, '')")
    sets = [("none", [])]
    if which in ("all", "one"):
        sets += [
            ("endpoint", [("endpoint", endpoint)]),
            ("version", [("version", "v2")]),
            ("status", [("status", "200")]),
            ("status_class", [("status_class", "4xx")]),
            ("location", [("location", country)]),
            ("browser", [("browser", browser)]),
            ("os", [("os", top("coalesce(os, '')"))]),
            ("device", [("device", top("coalesce(device, '')"))]),
            ("user", [("user", user)]),
        ]
    if which == "all":
        sets += [
            ("endpoint+status", [("endpoint", endpoint), ("status", "200")]),
            ("location+browser", [("location", country), ("browser", browser)]),
            ("version+class", [("version", "v1"), ("status_class", "2xx")]),
        ]
    return sets


def independent_where(clicks, since, until) -> str:
    """The clicks and window as plain SQL over the layout's columns, written by hand."""
    conds = [f"created_at < to_timestamp({until})"]
    if since is not None:
        conds.append(f"created_at >= to_timestamp({since})")
    for dim, value in clicks:
        v = "'" + value.replace("'", "''") + "'"
        if dim == "endpoint":
            method, _, path = value.partition(" ")
            conds.append(f"method = '{method}' AND endpoint = '{path}'")
        elif dim == "status":
            conds.append(f"status = {int(value)}")
        elif dim == "status_class":
            conds.append(f"status // 100 = {int(value[0])}")
        elif dim == "user":
            conds.append(f"coalesce(ip_address, user_id) = {v}")
        else:
            conds.append(f"coalesce({dim}, '') = {v}")
    return " AND ".join(conds)


# --- the measuring process -----------------------------------------------------------------


def expected_counts(url, data_dir, key_id, periods, which, memory_mb, now_iso, out):
    """Runs in a process of its own: the filter sets, and each one's requests and users
    counted by plain SQL over the same files and hot rows (not by the planner under test).
    Apart from the measuring process so that its peak RSS is the refresh's alone."""
    from server.lake.source import open_rows
    from server.stats.filters import window_for

    bind(settings_for(url, data_dir, memory_mb))
    now = datetime.fromisoformat(now_iso)
    expected = []
    with open_rows(key_id) as rows:
        plain = f"(SELECT * FROM {rows.relation})"
        sets = filter_sets(plain, rows.cursor, which)
        for period in periods:
            window = window_for(period, now)
            for name, clicks in sets:
                where = independent_where(clicks, window.since, window.until)
                n, users = rows.cursor.execute(
                    f"SELECT count(*), count(DISTINCT coalesce(ip_address, user_id)) "
                    f"FROM {plain} WHERE {where}"
                ).fetchone()
                expected.append([period, name, clicks, [n, users]])
    Path(out).write_text(json.dumps(expected))


def measure(url, data_dir, key_id, cases, repeats, memory_mb, now_iso, out, compare=False,
            straddle=False):  # fmt: skip
    """Runs in a fresh process: the refresh of every case; writes results to `out`. With
    `compare`, each case that summaries answer is also refreshed from the rows alone (the
    way every click was answered before summary families), the two ways alternated."""
    from dash_app.panels import refresh
    from server.stats.filters import Filters

    bind(settings_for(url, data_dir, memory_mb))
    now = datetime.fromisoformat(now_iso)
    results = []
    # One untimed refresh first: a web process answers many, so the imports and first
    # connections it pays once are not any case's time.
    refresh(key_id, Filters(period=cases[0][0]), now)
    for period, name, clicks, want in cases:
        filters = Filters(period=period)
        for dim, value in clicks:
            filters = filters.with_click(dim, value)
        times, baseline, cpu = [], [], []
        compared = compare and answered_by_summaries(key_id, filters, now)
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            data, _figures = refresh(key_id, filters, now)
            times.append(time.perf_counter() - started)
            # The process's CPU (every engine thread's): less moved by other work on the
            # machine than the wall time.
            cpu.append(time.process_time() - started_cpu)
            if compared:
                with rows_only():
                    started = time.perf_counter()
                    rows_data, _figures = refresh(key_id, filters, now)
                    baseline.append(time.perf_counter() - started)
                if [rows_data.summary["requests"], rows_data.users] != want:
                    raise SystemExit(f"{period} {name}: the rows alone disagree with plain SQL")
        got = [data.summary["requests"], data.users]
        if straddle and answered_by_summaries(key_id, filters, now, pick="straddling"):
            versus = straddle_pair(key_id, filters, now, repeats, want, period, name)
        else:
            versus = None
        results.append(
            {
                "period": period,
                "filters": name,
                "median_s": statistics.median(times),
                # The first of the repeats: summaries' answers not yet kept in the process
                # (server.stats.summaries), what a view's first asker waits for.
                "first_s": times[0],
                "cpu_s": statistics.median(cpu),
                "requests": got[0],
                "users": got[1],
                "exact": got == want,
                "expected": want,
                "rows_only_s": statistics.median(baseline) if baseline else None,
                "straddle": versus,
            }
        )
        mark = "exact" if got == want else f"WRONG, expected {want}"
        versus = ""
        if baseline:
            rows_s = statistics.median(baseline)
            versus = f"  (rows alone {rows_s:.3f} s: {rows_s / statistics.median(times):.1f}x)"
        print(
            f"  {period:>4} {name:<17} {statistics.median(times):6.3f} s "
            f"(CPU {statistics.median(cpu):6.3f} s; first {times[0]:6.3f} s)  "
            f"{got[0]:>11,} requests {got[1]:>6,} users  {mark}{versus}",
            flush=True,
        )
    rss = peak_rss_mb()
    Path(out).write_text(json.dumps({"results": results, "rss_mb": rss}))


PAGE_SETS = ("none", "endpoint", "status", "consumer", "consumer_group", "location")


def page_cases(rows_sql, cur) -> list[tuple[str, list[tuple[str, str]]]]:
    """The Errors and Consumers pages' filter sets, values picked by plain SQL."""

    def top(expr: str) -> str:
        return cur.execute(
            f"SELECT {expr} AS v, count(*) n FROM {rows_sql} WHERE {expr} IS NOT NULL "
            "GROUP BY v ORDER BY n DESC, v LIMIT 1"
        ).fetchone()[0]

    picked = {
        "none": [],
        "endpoint": [("endpoint", top("method || ' ' || endpoint"))],
        "status": [("status", "500")],
        "consumer": [("consumer", top("consumer"))],
        "consumer_group": [("consumer_group", top("consumer_group"))],
        "location": [("location", top("location"))],
    }
    return [(name, picked[name]) for name in PAGE_SETS]


def expected_pages(url, data_dir, key_id, periods, memory_mb, out):
    """Process of its own: each page case's answers by plain SQL over the same rows: every
    error group's occurrences, and the ten busiest consumers' requests. The pages ask for
    their periods up to now, so these are counted up to now too (not the load's time)."""
    from server.lake.source import open_rows
    from server.stats.filters import window_for

    bind(settings_for(url, data_dir, memory_mb))
    now = datetime.now(UTC)
    expected = []
    with open_rows(key_id) as rows:
        plain = f"(SELECT * FROM {rows.relation})"
        for period in periods:
            window = window_for(period, now)
            for name, clicks in page_cases(plain, rows.cursor):
                where = independent_where(clicks, window.since, window.until)
                groups = rows.cursor.execute(
                    f"SELECT error_group, count(*) FROM {plain} WHERE {where} "
                    "AND error_group IS NOT NULL GROUP BY ALL ORDER BY ALL"
                ).fetchall()
                busiest = rows.cursor.execute(
                    f"SELECT consumer, count(*) n FROM {plain} WHERE {where} "
                    "AND consumer IS NOT NULL GROUP BY ALL ORDER BY n DESC, consumer LIMIT 10"
                ).fetchall()
                expected.append([period, name, clicks, [[list(g) for g in groups],
                                                        [list(b) for b in busiest]]])  # fmt: skip
    Path(out).write_text(json.dumps(expected))


def measure_pages(url, data_dir, key_id, cases, repeats, memory_mb, out):
    """Fresh process: the Errors and the Consumers page's work for each case (what their
    callbacks run: the questions, the shaping and the tables' components), median of
    `repeats`, checked against `expected_pages`."""
    from dash import Dash

    from dash_app.error_views import groups_table, validation_table
    from dash_app.errors_data import consumer_tables, group_list, validation_rows
    from dash_app.pages.consumers import consumers_table
    from dash_app.panels import refresh
    from server.stats.filters import Filters

    bind(settings_for(url, data_dir, memory_mb))
    Dash(__name__, requests_pathname_prefix="/dashboard/")  # what the pages' links resolve by

    def errors_page(filters):
        listing = group_list(key_id, filters, "all", "count")
        invalid = validation_rows(key_id, filters)
        groups_table(listing, "", filters.to_query(), "count")
        validation_table(invalid)
        return listing

    def consumers_page(filters):
        found = consumer_tables(key_id, filters)
        consumers_table(found["consumer"], "", filters, "consumer")
        consumers_table(found["consumer_group"], "", filters, "consumer_group")
        return found["consumer"]

    def overview(filters):  # the baseline: the overview's refresh of the same view
        return refresh(key_id, filters)

    errors_page(Filters(period=cases[0][0]))  # untimed: imports and first connections
    overview(Filters(period=cases[0][0]))
    results = []
    for period, name, clicks, (groups, busiest) in cases:
        filters = Filters(period=period)
        for dim, value in clicks:
            filters = filters.with_click(dim, value)
        timed = {}
        pages = (("errors", errors_page), ("consumers", consumers_page), ("overview", overview))
        for page, run in pages:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                answer = run(filters)
                times.append(time.perf_counter() - started)
            timed[page] = (statistics.median(times), answer)
        listing, found = timed["errors"][1], timed["consumers"][1]
        want_total = sum(n for _g, n in groups)
        exact = listing.occurrences == want_total and listing.total == len(groups)
        top = [[r["id"], r["requests"]] for r in found[:10]]
        exact = exact and top == busiest
        results.append({"period": period, "filters": name, "errors_s": timed["errors"][0],
                        "consumers_s": timed["consumers"][0],
                        "overview_s": timed["overview"][0], "exact": exact,
                        "groups": listing.total, "occurrences": listing.occurrences,
                        "consumers": found[0]["total"] if found else 0})  # fmt: skip
        print(f"  {period:>4} {name:<15} errors {timed['errors'][0]:6.3f} s "
              f"({listing.total} groups, {listing.occurrences:,} occurrences)  consumers "
              f"{timed['consumers'][0]:6.3f} s ({found[0]['total'] if found else 0:,})  "
              f"overview {timed['overview'][0]:6.3f} s  "
              f"{'exact' if exact else 'WRONG'}", flush=True)  # fmt: skip
    Path(out).write_text(json.dumps({"results": results, "rss_mb": peak_rss_mb()}))


def measure_slo_pages(url, data_dir, key_id, repeats, memory_mb, now_iso, out):
    """Fresh process: the SLOs and Releases pages' work as their callbacks run it (the
    questions, the cards and their figures, the table), and the release_regression
    rule's measures, median of `repeats`, with the overview's 30-day refresh of the same
    key as the baseline; checked against plain SQL."""
    from datetime import timedelta
    from types import SimpleNamespace

    from dash import Dash

    from bench.slos import SLOS, plain_count
    from dash_app.pages.releases import comparison_table
    from dash_app.pages.slos import card
    from dash_app.panels import refresh
    from server.alerts import releases
    from server.deploys.comparison import compare
    from server.lake.source import open_rows
    from server.slos import status
    from server.stats.filters import Filters

    bind(settings_for(url, data_dir, memory_mb))
    Dash(__name__, requests_pathname_prefix="/dashboard/")
    now = datetime.fromisoformat(now_iso)
    moment = status.us(now - timedelta(days=3))
    deploy = {"id": 1, "version": "bench", "deployed_at": moment, "hostname": None}
    rule = SimpleNamespace(id=0, key_id=key_id, window_minutes=60, threshold=10.0,
                           min_requests=30)  # fmt: skip
    hour = 3_600_000_000

    def slos_page():
        states = status.statuses(key_id, SLOS, now)
        [card(slo, state) for slo, state in zip(SLOS, states, strict=True)]
        return states

    def releases_page():
        result = compare(key_id, deploy, 60, now)
        comparison_table(result)
        return result

    def release_rule():  # the evaluation's work an hour after a deploy
        return releases.regressed(rule, compare(key_id, deploy, 60, now)["endpoints"])

    def release_rule_open():  # an open incident's check, once the hour has passed
        return releases.regressed(rule, releases._recent(key_id, deploy, hour, moment + 2 * hour))

    def overview():
        return refresh(key_id, Filters(period="30d"), now)

    runs = {"slos": slos_page, "releases": releases_page, "release_rule": release_rule,
            "release_rule_open": release_rule_open, "overview": overview}  # fmt: skip
    for run in runs.values():  # untimed: imports and first connections
        run()
    timed = {}
    for name, run in runs.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            answer = run()
            times.append(time.perf_counter() - started)
        timed[name] = (statistics.median(times), answer)
    wrong = []
    for slo, state in zip(SLOS, timed["slos"][1], strict=True):
        want = plain_count(key_id, slo, state.until_us - 30 * 86_400_000_000, state.until_us)
        if (state.requests, state.bad) != want:
            wrong.append([slo["name"], [state.requests, state.bad], list(want)])
    with open_rows(key_id) as rows:
        plain = rows.query(
            f"SELECT route, epoch_us(created_at) >= {moment} AS after, count(*), "
            "count(*) FILTER (WHERE status >= 500) FROM {rows} "
            f"WHERE epoch_us(created_at) >= {moment - hour} "
            f"AND epoch_us(created_at) < {moment + hour} GROUP BY ALL"
        ).fetchall()
    want = {(r, bool(a)): (int(n), int(e)) for r, a, n, e in plain}
    result = timed["releases"][1]
    got = {}
    for e in result["endpoints"]:
        for side, after in (("before", False), ("after", True)):
            if e[side] is not None:
                got[(e["endpoint"], after)] = (e[side]["requests"], e[side]["errors"])
    if got != want:
        wrong.append(["release comparison differs from plain SQL", len(got), len(want)])
    report = {name: seconds for name, (seconds, _answer) in timed.items()}
    report.update(endpoints=len(result["endpoints"]), wrong=wrong, rss_mb=peak_rss_mb(),
                  slo_requests=[s.requests for s in timed["slos"][1]])  # fmt: skip
    Path(out).write_text(json.dumps(report))


def slo_pages(args, url, data_dir, key_id: int, now_iso: str) -> int:
    """--slo-pages: the SLOs and Releases pages, against the overview's refresh."""
    progress("the SLOs and Releases pages (a fresh process; median of each)")
    out = Path(data_dir) / "slo_page_results.json"
    in_process(measure_slo_pages, url, data_dir, key_id, args.repeats, args.memory_mb,
               now_iso, str(out))  # fmt: skip
    report = json.loads(out.read_text())
    base = report["overview"]
    print()
    print(f"rows: {args.rows:,} for the key ({args.hot:,} hot), "
          f"{args.rows + args.other_rows + args.hot:,} in all; the SLOs count "
          f"{max(report['slo_requests']):,} requests in 30 days")  # fmt: skip
    print(f"overview 30-day refresh (the baseline): {base:.3f} s")
    shown = (("slos", "SLOs page (4 SLOs)"),
             ("releases", f"Releases page ({report['endpoints']} endpoints)"),
             ("release_rule", "release_regression rule, after a deploy"),
             ("release_rule_open", "release_regression rule, an open incident's check"),
             )  # fmt: skip
    for name, label in shown:
        met = "met" if report[name] <= args.target else "MISSED"
        print(f"{label}: {report[name]:.3f} s, {report[name] / base:.2f}x the overview; "
              f"target {args.target} s: {met}")  # fmt: skip
    print(f"exact: {report['wrong'] or 'yes'}")
    print(f"peak RSS of the measuring process: {report['rss_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if report["wrong"] else 0


def answered_by_summaries(key_id: int, filters, now: datetime, pick: str = "covered") -> bool:
    """Whether closed months' summaries answer part of this refresh: files wholly inside
    the window (`pick` "covered"), or one the window starts in ("straddling")."""
    from server.lake.source import open_rows
    from server.stats import summaries
    from server.stats.filters import window_for

    window = window_for(filters.period, now)
    if not summaries.usable(filters, window):
        return False
    with open_rows(key_id) as rows:
        return bool(getattr(summaries, pick)(rows.snapshot.files, window))


def straddle_pair(key_id, filters, now, repeats, want, period, name) -> dict:
    """--compare-straddle: first refreshes (the summaries' answers kept in the process
    cleared before each), the straddled month from its summary less its earlier rows,
    against the same month from its rows (STRADDLE_SHARE 0), alternated."""
    from dash_app.panels import refresh
    from server.stats import summaries

    share = summaries.STRADDLE_SHARE
    times = {"summary": [], "rows": []}
    try:
        for _ in range(repeats):
            for way, value in (("summary", share), ("rows", 0.0)):
                summaries.STRADDLE_SHARE = value
                summaries._kept.clear()
                started = time.perf_counter()
                data, _figures = refresh(key_id, filters, now)
                times[way].append(time.perf_counter() - started)
                if [data.summary["requests"], data.users] != want:
                    raise SystemExit(f"{period} {name}: {way} disagrees with plain SQL")
    finally:
        summaries.STRADDLE_SHARE = share
    a, b = statistics.median(times["summary"]), statistics.median(times["rows"])
    print(f"  {period:>4} {name:<17} first refresh, straddled month from its summary "
          f"{a:.3f} s, from its rows {b:.3f} s: {b / a:.2f}x", flush=True)  # fmt: skip
    return {"summary_s": a, "rows_s": b}


@contextlib.contextmanager
def rows_only():
    """Refreshes inside answer every question from the rows: the baseline of --compare."""
    from server.stats import summaries

    usable = summaries.usable
    summaries.usable = lambda filters, window: False
    try:
        yield
    finally:
        summaries.usable = usable


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux
    carries the high-water mark of the forked copy into it across exec, so a spawned
    child reports at least its parent's size at the fork (here the loader's, 740 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_process(target, *args) -> None:
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=target, args=args)
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise SystemExit(f"the {target.__name__} process failed")


def bytes_per_row(db, settings, total_rows: int) -> dict:
    """Everything on disk: every file under the store (data files and their summaries, as
    the filesystem has them, not as the catalog counts them) and every table of ours
    with its indexes and TOAST."""
    from sqlalchemy import text

    from server.lake.summaries import SUFFIX

    files = [p for p in Path(settings.LAKE_URL).rglob("*") if p.is_file()]
    file_bytes = sum(p.stat().st_size for p in files)
    summary_bytes = sum(p.stat().st_size for p in files if p.name.endswith(SUFFIX))
    with db.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
        ).scalar()
    return {
        "file_bytes": file_bytes,
        "summary_bytes": summary_bytes,
        "table_bytes": int(tables),
        "per_row": (file_bytes + int(tables)) / max(total_rows, 1),
    }


@contextlib.contextmanager
def store_dir(keep: str | None):
    if keep:
        path = Path(tempfile.gettempdir()) / keep
        path.mkdir(exist_ok=True)
        yield str(path)
    else:
        with tempfile.TemporaryDirectory() as path:
            yield path


def upgrade_summaries(db, settings) -> None:
    """A store kept from an earlier release: one compaction, as the running service's
    first would, gives its closed months today's summaries (timed, and its peak RSS)."""
    started = time.monotonic()
    in_process(_compact, settings.DATABASE_URL, settings.DATA_DIR, settings.ENGINE_MEMORY_MB)
    progress(f"compaction (today's summaries for older ones): {time.monotonic() - started:.1f} s")


def _compact(url, data_dir, memory_mb) -> None:
    from server.lake.compaction import compact, remove_retired

    settings = settings_for(url, data_dir, memory_mb)
    db = bind(settings)
    merged = compact(db, settings)
    # Nothing else reads this store: the replaced files go now, so that the bytes a row
    # counted below are the upgraded store's alone.
    removed = remove_retired(db, settings.model_copy(update={"LAKE_GRACE_SECONDS": 0}))
    progress(f"compaction: {merged} files merged, {removed} replaced files removed; "
             f"peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip


def load_all(db, settings, args, now: datetime) -> int:
    """The key's rows, the other key's and the hot rows; the key's id."""
    from bench.lake_load import load_key
    from server.keys.api_keys import create_key

    with db.begin() as conn:
        key_id, _ = create_key(conn)
        other_id, _ = create_key(conn)
    started = time.monotonic()
    load_key(db, settings, key_id, args.rows, now, progress,
             extras=args.errors or args.slo_pages)  # fmt: skip
    if args.other_rows:
        load_key(db, settings, other_id, args.other_rows, now, progress)
    if args.hot:
        _hot_rows(db, key_id, args.hot, now)
    progress(f"loaded in {time.monotonic() - started:.0f} s")
    return key_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--other-rows", type=int, default=10_000_000)
    parser.add_argument("--hot", type=int, default=20_000, help="rows left in the hot table")
    parser.add_argument("--periods", default=",".join(PERIODS))
    parser.add_argument("--filters", choices=("all", "one", "none"), default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=256, help="ENGINE_MEMORY_MB")
    parser.add_argument("--target", type=float,
                        help="seconds a refresh may take: 1.0, or 3.0 from 100 M rows")  # fmt: skip
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--compare", action="store_true",
        help="also refresh each case summaries answer from the rows alone, and print the ratio",
    )  # fmt: skip
    parser.add_argument(
        "--compare-straddle", action="store_true",
        help="also time first refreshes of each case whose window starts inside a closed "
        "month: that month from its summary less its earlier rows, against its rows",
    )  # fmt: skip
    parser.add_argument(
        "--errors", action="store_true",
        help="rows with consumers and exceptions; time the Errors and Consumers pages",
    )  # fmt: skip
    parser.add_argument(
        "--keep", metavar="NAME",
        help="keep the database NAME and the store in $TMPDIR/NAME, and reuse them next time "
        "(the clock then stands at the first run's time)",
    )  # fmt: skip
    parser.add_argument(
        "--slo-pages", action="store_true",
        help="rows with consumers; time the SLOs and Releases pages",
    )  # fmt: skip
    args = parser.parse_args()
    if args.target is None:
        args.target = TARGET_SECONDS_100M if args.rows >= 100_000_000 else TARGET_SECONDS
    periods = [p for p in args.periods.split(",") if p]

    with fresh_database("apia_dash", keep=args.keep) as url, store_dir(args.keep) as data_dir:
        settings = settings_for(url, data_dir, args.memory_mb)
        db = bind(settings)
        loaded = Path(data_dir) / "loaded.json"
        shape = [args.rows, args.other_rows, args.hot] + (
            ["errors"] if args.errors or args.slo_pages else []
        )
        if loaded.exists() and json.loads(loaded.read_text())["shape"] == shape:
            state = json.loads(loaded.read_text())
            key_id, now = state["key_id"], datetime.fromisoformat(state["now"])
            progress(f"reusing the rows loaded at {state['now']} ({args.keep})")
            upgrade_summaries(db, settings)
        else:
            if loaded.exists():
                raise SystemExit(f"--keep {args.keep} holds other rows: drop it first")
            now = datetime.now(UTC)
            key_id = load_all(db, settings, args, now)
            if args.keep:
                state = {"shape": shape, "key_id": key_id, "now": now.isoformat()}
                loaded.write_text(json.dumps(state))
        now_iso = now.isoformat()
        if args.errors:
            return pages(args, url, data_dir, db, settings, key_id, periods)
        if args.slo_pages:
            return slo_pages(args, url, data_dir, key_id, now_iso)
        progress("counting each case by plain SQL (a process of its own)")
        cases = Path(data_dir) / "cases.json"
        in_process(
            expected_counts, url, data_dir, key_id, periods, args.filters, args.memory_mb,
            now_iso, str(cases),
        )  # fmt: skip
        progress("refreshing (a fresh process; median of each)")
        out = Path(data_dir) / "results.json"
        in_process(
            measure, url, data_dir, key_id, json.loads(cases.read_text()), args.repeats,
            args.memory_mb, now_iso, str(out), args.compare, args.compare_straddle,
        )  # fmt: skip
        report = json.loads(out.read_text())
        total = args.rows + args.other_rows + args.hot
        size = bytes_per_row(db, settings, total)
    results = report["results"]
    slowest = max(results, key=lambda r: r["median_s"])
    wrong = [r for r in results if not r["exact"]]
    print()
    print(f"rows: {args.rows:,} for the key, {total:,} in all ({args.hot:,} hot)")
    print(
        f"refresh: median of medians {statistics.median(r['median_s'] for r in results):.3f} s, "
        f"slowest {slowest['median_s']:.3f} s ({slowest['period']} {slowest['filters']}); "
        f"target {args.target} s: {'met' if slowest['median_s'] <= args.target else 'MISSED'}"
    )
    first = max(results, key=lambda r: r["first_s"])
    print(
        f"first refresh of each case (its summaries' answers not kept yet): median "
        f"{statistics.median(r['first_s'] for r in results):.3f} s, slowest "
        f"{first['first_s']:.3f} s ({first['period']} {first['filters']})"
    )
    print(f"exact: {len(results) - len(wrong)}/{len(results)}")
    print(
        f"peak RSS of the refreshing process: {report['rss_mb']:.0f} MB "
        f"(target {TARGET_RSS_MB}: {'met' if report['rss_mb'] <= TARGET_RSS_MB else 'MISSED'})"
    )
    print(
        f"bytes per stored row: {size['per_row']:.1f} (files {size['file_bytes']:,} B, "
        f"of which summaries {size['summary_bytes']:,} B, "
        f"tables {size['table_bytes']:,} B; target {TARGET_BYTES_PER_ROW})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "bytes": size}, indent=1))
    return 1 if wrong else 0


def pages(args, url, data_dir, db, settings, key_id: int, periods: list[str]) -> int:
    """--errors: the Errors and Consumers pages for every period and page filter set."""
    progress("counting each case by plain SQL (a process of its own)")
    cases = Path(data_dir) / "page_cases.json"
    in_process(expected_pages, url, data_dir, key_id, periods, args.memory_mb, str(cases))
    progress("the Errors and Consumers pages (a fresh process; median of each)")
    out = Path(data_dir) / "page_results.json"
    in_process(
        measure_pages, url, data_dir, key_id, json.loads(cases.read_text()), args.repeats,
        args.memory_mb, str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    total = args.rows + args.other_rows + args.hot
    size = bytes_per_row(db, settings, total)
    results = report["results"]
    wrong = [r for r in results if not r["exact"]]
    print()
    print(f"rows: {args.rows:,} for the key ({max(r['occurrences'] for r in results):,} "
          f"exceptions in all time, {max(r['consumers'] for r in results):,} consumers), "
          f"{total:,} in all ({args.hot:,} hot)")  # fmt: skip
    for page in ("errors", "consumers"):
        slowest = max(results, key=lambda r: r[f"{page}_s"])
        median = statistics.median(r[f"{page}_s"] for r in results)
        ratios = [r[f"{page}_s"] / r["overview_s"] for r in results]
        print(f"{page} page: median {median:.3f} s, slowest {slowest[f'{page}_s']:.3f} s "
              f"({slowest['period']} {slowest['filters']}); target {args.target} s: "
              f"{'met' if slowest[f'{page}_s'] <= args.target else 'MISSED'}; "
              f"against the overview's refresh of the same view, same process: median "
              f"{statistics.median(ratios):.2f}x, highest {max(ratios):.2f}x")  # fmt: skip
    print(
        f"overview refresh (the baseline): median "
        f"{statistics.median(r['overview_s'] for r in results):.3f} s"
    )
    print(f"exact: {len(results) - len(wrong)}/{len(results)}")
    print(f"peak RSS of the measuring process: {report['rss_mb']:.0f} MB")
    print(f"bytes per stored row (with consumers and exceptions): {size['per_row']:.1f} "
          f"(files {size['file_bytes']:,} B, tables {size['table_bytes']:,} B)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "bytes": size}, indent=1))
    return 1 if wrong else 0


def _hot_rows(db, key_id: int, count: int, now: datetime) -> None:
    """Recent rows left in the hot table, as the enrichment job writes them."""
    from datetime import timedelta

    from server.lake.layout import stored_row
    from server.lake.users import number_users
    from server.lake.write import store_rows

    ips = [f"198.51.100.{i}" for i in range(200)]
    numbers = number_users(db, {(key_id, ip) for ip in ips})
    rows = [
        stored_row(
            key_id=key_id,
            created_at=now - timedelta(seconds=i * 3),
            hostname="api.acme.dev",
            path=f"/v1/users/{i % 97}",
            method="GET",
            status=200 if i % 9 else 503,
            response_time=20 + i % 300,
            ip_address=ips[i % 200],
            location="US",
            user_id=None,
            framework="FastAPI",
            user_agent="curl/8.5.0",
            browser="curl",
            os="Other",
            device="other",
            bot=False,
            ux=numbers[(key_id, ips[i % 200])],
        )
        for i in range(count)
    ]
    with db.begin() as conn:
        store_rows(conn, rows)


if __name__ == "__main__":
    sys.exit(main())
