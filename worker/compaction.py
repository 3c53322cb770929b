"""`python -m worker.compaction`: one compaction, in a process of lower CPU priority.

Started by worker.export.compact_aside, which holds the compaction lock meanwhile: reads
the settings (JSON) from stdin, lowers its priority by LAKE_COMPACT_NICE, runs
worker.export.compact and writes {"merged", "pid", "nice", "seconds", "cpu"} to stdout.
Its logs go to stderr, as the worker's do. It dies with the process that started it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main() -> int:
    from server import configure_logging
    from server.children import die_with_parent
    from server.config import Config, use_config
    from server.db import init_engine

    die_with_parent()
    settings = use_config(Config(**json.loads(sys.stdin.buffer.read())))
    os.nice(settings.LAKE_COMPACT_NICE)
    configure_logging(settings.LOG_LEVEL)
    db = init_engine(settings.DATABASE_URL)
    from worker.export import compact

    started = time.monotonic()
    merged = compact(db, settings)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread's, the engine's too
    sys.stdout.write(json.dumps({
        "merged": merged, "pid": os.getpid(), "nice": os.nice(0),
        "seconds": round(time.monotonic() - started, 2),
        "cpu": round(usage.ru_utime + usage.ru_stime, 2),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
