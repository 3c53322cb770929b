"""`make bench`: every benchmark in turn (one after another: they would skew each other).

make bench                     # full runs (about 40 minutes)
make bench BENCH_ARGS=--quick  # smoke runs of each
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "ingest.py": ["--quick"],
    "ingest_batch.py": ["--quick"],
    "otlp_batch.py": ["--quick"],
    "worker.py": ["--batches", "30"],
    "dashboard.py": ["--rows", "200000"],
    "data_pages.py": ["--rows", "200000", "--repeats", "2"],
    "slos.py": ["--rows", "200000", "--hot", "1000", "--repeats", "1"],
    "compaction.py": ["--quick"],
    "hot_copy.py": ["--quick"],
    "middleware.py": ["--quick"],
}


SCRIPTS = (
    "ingest.py",
    "ingest_batch.py",
    "otlp_batch.py",
    "worker.py",
    "dashboard.py",
    "data_pages.py",
    "slos.py",
    "compaction.py",
    "hot_copy.py",
    "middleware.py",
)


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for script in SCRIPTS:
        args = QUICK[script] if quick else []
        print(f"\n===== bench/{script} {' '.join(args)} =====", flush=True)
        if subprocess.call([sys.executable, str(HERE / script), *args]) != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
