"""Gunicorn hooks for the bench project: readiness and statement counts, per worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    # The harness waits for one file per worker before it sends anything.
    run_dir = os.environ.get("BENCH_RUN_DIR")
    if run_dir:
        (Path(run_dir) / f"ready-{os.getpid()}").touch()


def worker_exit(server: Any, worker: Any) -> None:
    from bench.counting import dump

    dump()
