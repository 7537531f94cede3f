"""Database statements per delivery, counted in each gunicorn worker.

``CountingMiddleware`` installs ``connection.execute_wrapper`` for each POST;
the totals of a worker are written to ``$BENCH_RUN_DIR/stats-<pid>.json``
when it exits (``bench.gunicorn_conf.worker_exit``), and the benchmark adds
up the files of all workers.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse

_totals: Counter[str] = Counter()
_lock = threading.Lock()


class _StatementCounter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        if sql.startswith("BEGIN"):
            # Only SQLite sends BEGIN through Django's cursor (psycopg sends its
            # own): it opens one explicit transaction, not a statement of work.
            self.counts["begins"] += 1
        else:
            self.counts["statements"] += 1
            if not context["connection"].in_atomic_block:
                # Autocommit: this statement is a transaction of its own.
                self.counts["autocommit"] += 1
        return execute(sql, params, many, context)


class CountingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self.get_response(request)
        counter = _StatementCounter()
        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        counter.counts["posts"] += 1
        with _lock:
            _totals.update(counter.counts)
        return response


def dump() -> None:
    """Write this process's totals into ``$BENCH_RUN_DIR``."""
    run_dir = os.environ.get("BENCH_RUN_DIR")
    if not run_dir:
        return
    with _lock:
        totals = dict(_totals)
    path = Path(run_dir) / f"stats-{os.getpid()}.json"
    path.write_text(json.dumps(totals))
