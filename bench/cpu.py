"""CPU per delivery of each receiver, in one process on PostgreSQL: no server, no load generator.

``python -m bench.cpu [--deliveries N] [--rounds R] [--write]``

Each receiver of ``bench.run`` (but the million rows) answers the same kind of fresh
``nutror.file_downloaded`` deliveries through Django's own WSGI handler, from empty tables.
What one delivery costs is measured where the throughput of a full host goes: the CPU time of
this process (Django, the app, psycopg) and of its PostgreSQL backend (read from
``/proc/<pid>/stat``), per delivery, with the statements Django sent. A receiver's ratio to
floor B is floor B's CPU over its own, per round, the median of the rounds: what its throughput
would be on a host whose cores are all busy, before the load generator's share.

Needs the local PostgreSQL (database ``eduzz_bench_cpu``, created and dropped here) and its
backends' ``/proc`` entries (the same machine, the same user or root).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import db, report
from .harness import Delivery, file_downloaded_events, signed
from .run import CATALOG

URL = os.environ.get("BENCH_CPU_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/eduzz_bench_cpu")
TICKS = os.sysconf("SC_CLK_TCK")

# (label, path, background mode)
RECEIVERS = [
    ("Floor A: bare view, reads the body", "/floor-a/", False),
    ("Floor B: + one insert of the raw body", "/floor-b/", False),
    ("Naive: DRF serializer + get_or_create chain", "/naive/", False),
    ("This app, synchronous", "/eduzz/", False),
    ("This app, task mode (outbox: event + task, one commit)", "/eduzz/", True),
    ("Doorbell: event autocommitted, then one shared row read", "/doorbell/", False),
]
FLOOR_B = RECEIVERS[1][0]
# The goals' comparisons: (receiver, baseline), CPU per delivery in the same round.
COMPARED = [(RECEIVERS[3][0], RECEIVERS[2][0]), (RECEIVERS[4][0], FLOOR_B)]


@dataclass
class Cost:
    """One round of one receiver, per delivery."""

    app: float  # microseconds of this process's CPU
    database: float  # microseconds of its PostgreSQL backend's CPU
    statements: float

    @property
    def total(self) -> float:
        return self.app + self.database


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU the process ``pid`` has used (user and system)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return int(pid)


def _environ(path: str, delivery: Delivery) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(delivery.body),
        "CONTENT_LENGTH": str(len(delivery.body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_X_SIGNATURE": delivery.signature,
    }


@contextmanager
def _background(on: bool) -> Iterator[None]:
    from django.conf import settings
    from django.test import override_settings

    with override_settings(EDUZZ_WEBHOOKS={**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": on}):
        yield


def measure(
    application: Callable[..., Any], path: str, deliveries: list[Delivery], warm_up: int
) -> Cost:
    from django.db import connection

    def start_response(status: str, headers: Any) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{path} answered {status}")

    def send(batch: list[Delivery]) -> None:
        for delivery in batch:
            response = application(_environ(path, delivery), start_response)
            b"".join(response)
            response.close()

    send(deliveries[:warm_up])  # imports, the connection, caches
    timed = deliveries[warm_up:]
    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    pid = _backend_pid()
    app, database = time.process_time(), _backend_cpu(pid)
    with connection.execute_wrapper(count):
        send(timed)
    app, database = time.process_time() - app, _backend_cpu(pid) - database
    if _backend_pid() != pid:
        raise RuntimeError("the connection was replaced during the measure")
    n = len(timed)
    return Cost(app / n * 1e6, database / n * 1e6, statements / n)


def run(deliveries: int, rounds: int, warm_up: int) -> dict[str, list[Cost]]:
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup()
    application = WSGIHandler()
    rng = random.Random(0)
    costs: dict[str, list[Cost]] = {label: [] for label, _path, _bg in RECEIVERS}
    for number in range(1, rounds + 1):
        for label, path, background in RECEIVERS:
            db.truncate(URL)
            events = file_downloaded_events(CATALOG, rng, warm_up + deliveries)
            with _background(background):
                cost = measure(application, path, [signed(e) for e in events], warm_up)
            costs[label].append(cost)
            print(
                f"round {number}: {label}: {cost.app:.0f} + {cost.database:.0f} us CPU, "
                f"{cost.statements:.2f} statements",
                flush=True,
            )
    return costs


def markdown(costs: dict[str, list[Cost]], info: dict[str, str], deliveries: int) -> str:
    floor_b = costs[FLOOR_B]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        "`python -m bench.cpu`.",
        "",
        f"- {info['cores']} cores ({info['cpu']}), Python {info['python']}, Django "
        f"{info['django']}, PostgreSQL {db.server_version(URL)}; load average "
        f"{info['load_before']} before the run.",
        f"- {deliveries} timed deliveries per receiver and round, from empty tables, "
        f"{len(floor_b)} rounds; each figure is the median of the rounds.",
        "",
        "| receiver | app CPU, us | database CPU, us | total, us | x floor B | statements |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, rounds in costs.items():
        lines.append(
            f"| {label} | {statistics.median(r.app for r in rounds):.0f} "
            f"| {statistics.median(r.database for r in rounds):.0f} "
            f"| {statistics.median(r.total for r in rounds):.0f} | {_ratio(floor_b, rounds)[0]} "
            f"| {statistics.median(r.statements for r in rounds):.2f} |"
        )
    lines.append("")
    for label, baseline in COMPARED:
        ratio, each = _ratio(costs[baseline], costs[label])
        lines.append(f"- {label}, over {baseline.split(':')[0]}: {ratio}x ({each})")
    return "\n".join(lines)


def _ratio(baseline: list[Cost], rounds: list[Cost]) -> tuple[str, str]:
    """The median of the rounds' ``baseline`` CPU over ``rounds``', and each round's."""
    each = [b.total / r.total for b, r in zip(baseline, rounds, strict=True)]
    return f"{statistics.median(each):.2f}", " / ".join(f"{x:.2f}" for x in each)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1500, help="timed, per round")
    parser.add_argument("--warm-up", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--write", action="store_true", help="write the table into docs/performance.md"
    )
    args = parser.parse_args(argv)
    os.environ["BENCH_DATABASE_URL"] = URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    info = report.machine()
    info["load_before"] = report.load_average()
    db.recreate(URL)
    db.migrate(URL)
    try:
        costs = run(args.deliveries, args.rounds, args.warm_up)
    finally:
        from django.db import connections

        connections.close_all()
        db.drop(URL)
    text = markdown(costs, info, args.deliveries)
    print(text)
    if args.write:
        report.write_section("cpu", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
