"""The launch-burst load test: many deliveries of the same events at once, on PostgreSQL.

A course launch makes thousands of learners download files within minutes,
and Eduzz delivers each event more than once (retries overlap). This sends
``--events`` distinct ``nutror.file_downloaded`` events, each ``--deliveries``
times, in random order, most copies of an event at the same moment on
different connections and some of them late, to the bench project under
gunicorn with several workers. Receivers in ``bench.settings_loadtest``
count every signal in a table without a unique constraint.

With ``--task-workers N`` the app runs in background mode and N
django-tasks-db ``db_worker`` processes drain the events while the burst
goes on; the test then waits until every event is processed.

Then it checks, in the database, that each distinct event was stored once,
made one download and fired each signal once, that no producer, course,
lesson or learner was created twice, and that no request got an error.
Run with ``./scripts/loadtest`` (``--help`` for the knobs); it exits non-zero
when a check fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from . import db, harness, report

SETTINGS = "bench.settings_loadtest"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/eduzz_bench_load"


@dataclass
class LoadReport:
    events: int
    deliveries_per_event: int
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    overlapping: int = 0  # events with two deliveries in flight at the same time
    events_stored: dict[str, int] = field(default_factory=dict)
    downloads: int = 0
    signals: dict[str, int] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    task_workers: int = 0
    drained_seconds: float = 0.0  # background mode: from the last answer to the last event done

    @property
    def ok(self) -> bool:
        return not self.failures


def launch_catalog(events: int) -> harness.Catalog:
    """Few producers and courses, learners who download several files: rows are shared."""
    return harness.Catalog(
        producers=3, courses=12, lessons_per_course=15, learners=max(10, events // 3)
    )


def burst(
    deliveries: list[harness.Delivery], copies: int, window: int, rng: random.Random
) -> list[harness.Delivery]:
    """Each delivery ``copies`` times: mostly side by side (sent at the same moment), in random
    order within ``window``; for half of the events one copy comes at a random other time.
    """
    order: list[harness.Delivery] = []
    late: list[harness.Delivery] = []
    for delivery in deliveries:
        group = [delivery] * copies
        if copies > 1 and rng.random() < 0.5:
            late.append(group.pop())
        order.extend(group)
    for delivery in late:
        order.insert(rng.randrange(len(order) + 1), delivery)
    shuffled: list[harness.Delivery] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        rng.shuffle(chunk)
        shuffled.extend(chunk)
    return shuffled


def overlapping(timeline: list[tuple[str, float, float]]) -> int:
    """How many events had a delivery start before another delivery of it had been answered."""
    by_event: dict[str, list[tuple[float, float]]] = {}
    for event_id, start, end in timeline:
        by_event.setdefault(event_id, []).append((start, end))
    count = 0
    for spans in by_event.values():
        spans.sort()
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)):
            count += 1
    return count


def run(
    database_url: str,
    *,
    events: int = 3000,
    deliveries: int = 3,
    workers: int = 4,
    threads: int = 4,
    concurrency: int = 24,
    client_processes: int = 2,
    seed: int = 1,
    keep_database: bool = True,
    timeout: float = 900,
    task_workers: int = 0,
) -> LoadReport:
    """Create the database, fire the burst, check the outcome. See the module's docstring."""
    rng = random.Random(seed)
    catalog = launch_catalog(events)
    payloads = harness.file_downloaded_events(catalog, rng, events)
    unique = [harness.signed(payload) for payload in payloads]
    order = burst(unique, deliveries, 2 * concurrency, rng)
    result = LoadReport(events=events, deliveries_per_event=deliveries, task_workers=task_workers)

    db.recreate(database_url)
    try:
        db.migrate(database_url, SETTINGS)
        config = harness.ServerConfig(
            database_url, workers, threads, settings=SETTINGS, background=task_workers > 0
        )
        drainers = TaskWorkers(database_url, task_workers)
        with harness.Server(config) as server, drainers:
            load = harness.fire(
                server.port,
                "/eduzz/",
                order,
                concurrency=concurrency,
                processes=client_processes,
                timeout=timeout,
                details=True,
            )
            if task_workers:
                started = time.monotonic()
                if not _wait_until_processed(database_url, events, timeout):
                    result.failures.append(
                        f"events still waiting after {timeout:.0f} s; db_worker log:\n"
                        + drainers.log_tail()
                    )
                result.drained_seconds = time.monotonic() - started
        result.requests = load.sent
        result.seconds = load.elapsed
        result.p50_ms = load.percentile(0.50) * 1000
        result.p99_ms = load.percentile(0.99) * 1000
        result.statuses = {str(k): v for k, v in sorted(load.statuses.items())}
        result.outcomes = dict(sorted(load.outcomes.items()))
        result.overlapping = overlapping(load.timeline)
        if load.timed_out or load.sent != len(order):
            result.failures.append(f"only {load.sent} of {len(order)} requests were answered")
        if load.errors:
            result.failures.append(f"connection errors, first: {load.errors[0]}")
        errors = sum(v for k, v in load.statuses.items() if k >= 500 or k == 0)
        if errors:
            result.failures.append(f"{errors} requests got a 5xx or no answer")
        if set(load.statuses) - {200}:
            result.failures.append(f"answers other than 200: {result.statuses}")
        first = "queued" if task_workers else "processed"
        expected_outcomes = {first: events, "duplicate": events * (deliveries - 1)}
        if result.outcomes != {k: v for k, v in expected_outcomes.items() if v}:
            result.failures.append(f"answers said {result.outcomes}, expected {expected_outcomes}")
        _check_database(database_url, result, payloads)
        if result.failures:
            result.failures.append(f"gunicorn log:\n{server.log_tail()}")
    finally:
        if not keep_database:
            db.drop(database_url)
    return result


class TaskWorkers:
    """``count`` db_worker processes of the bench project, running until the block ends."""

    def __init__(self, database_url: str, count: int) -> None:
        self.database_url = database_url
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        # Closed (and so deleted) in __exit__.
        self.log = tempfile.NamedTemporaryFile(prefix="eduzz-db-worker-", suffix=".log")  # noqa: SIM115

    def __enter__(self) -> TaskWorkers:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "BENCH_DATABASE_URL": self.database_url,
            "BENCH_BACKGROUND": "1",
            "PYTHONPATH": str(harness.ROOT),
        }
        command = [sys.executable, "-m", "django", "db_worker", "--no-startup-delay"]
        command += ["--interval", "0.05"]
        self.processes = [
            subprocess.Popen(
                command,
                cwd=harness.ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(self.count)
        ]
        return self

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:])

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)  # db_worker finishes its task, then exits
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def _wait_until_processed(url: str, events: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with db.connect(url) as conn:
        while time.monotonic() < deadline:
            (done,) = conn.execute(
                "SELECT count(*) FROM eduzz_webhooks_webhookevent WHERE status = 'processed'"
            ).fetchone()
            if done >= events:
                return True
            time.sleep(0.2)
    return False


def _check_database(url: str, result: LoadReport, payloads: list[dict[str, Any]]) -> None:
    events = len(payloads)
    sent_ids = {payload["id"] for payload in payloads}
    with db.connect(url) as conn:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query).fetchall()

        stored = rows("SELECT event_id, status FROM eduzz_webhooks_webhookevent")
        result.events_stored = dict(sorted(Counter(str(s) for _, s in stored).items()))
        stored_ids = Counter(str(event_id) for event_id, _ in stored)
        if len(stored) != events or set(stored_ids) != sent_ids:
            result.failures.append(f"{len(stored)} events stored for {events} sent")
        if result.events_stored != {"processed": events}:
            result.failures.append(f"event statuses: {result.events_stored}")

        downloads = rows(
            "SELECT e.event_id FROM eduzz_webhooks_filedownload d "
            "JOIN eduzz_webhooks_webhookevent e ON e.id = d.event_id"
        )
        result.downloads = len(downloads)
        if len(downloads) != events or {str(e) for (e,) in downloads} != sent_ids:
            result.failures.append(f"{len(downloads)} downloads for {events} events")

        signals = rows("SELECT signal, event_id FROM bench_signalcount")
        for name in ("file_downloaded", "event_received"):
            got = Counter(str(e) for s, e in signals if s == name)
            result.signals[name] = sum(got.values())
            if set(got) != sent_ids or set(got.values()) != {1}:
                twice = sum(1 for n in got.values() if n > 1)
                result.failures.append(
                    f"{name}: {sum(got.values())} signals for {events} events"
                    f" ({len(got)} distinct, {twice} sent more than once)"
                )

        # Shared rows: each producer, course, lesson and learner exactly once.
        expected = {
            "producer": {p["data"]["producer"]["email"] for p in payloads},
            "course": {p["data"]["course"]["hash"] for p in payloads},
            "lesson": {(p["data"]["course"]["hash"], p["data"]["lesson"]["id"]) for p in payloads},
            "learner": {p["data"]["learner"]["email"] for p in payloads},
        }
        found = {
            "producer": rows("SELECT email FROM eduzz_webhooks_producer"),
            "course": rows("SELECT hash FROM eduzz_webhooks_course"),
            "lesson": rows(
                "SELECT c.hash, l.external_id FROM eduzz_webhooks_lesson l "
                "JOIN eduzz_webhooks_course c ON c.id = l.course_id"
            ),
            "learner": rows("SELECT email FROM eduzz_webhooks_learner"),
        }
        for table, want in expected.items():
            got_rows = [r[0] if len(r) == 1 else tuple(r) for r in found[table]]
            result.records[table] = f"{len(got_rows)} rows for {len(want)} distinct"
            if len(got_rows) != len(want) or set(got_rows) != want:
                result.failures.append(f"{table}: {result.records[table]}")


def markdown(result: LoadReport, options: argparse.Namespace, command: str) -> str:
    info = report.machine()
    per_second = result.requests / result.seconds if result.seconds else 0.0
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}` on"
        f" {info['cores']} cores ({info['cpu']}), Python {info['python']},"
        f" Django {info['django']}, PostgreSQL {options.postgresql}; gunicorn"
        f" {options.workers} workers x {options.threads} threads,"
        f" {options.concurrency} connections.",
        "",
        "| | |",
        "|---|---|",
        f"| distinct events x deliveries each | {result.events} x {result.deliveries_per_event} |",
        f"| requests | {result.requests} in {result.seconds:.1f} s ({per_second:.0f}/s) |",
        *(
            [
                f"| background mode | {result.task_workers} db_worker processes; every event"
                f" processed {result.drained_seconds:.1f} s after the last answer |"
            ]
            if result.task_workers
            else []
        ),
        f"| latency p50 / p99 | {result.p50_ms:.0f} ms / {result.p99_ms:.0f} ms |",
        f"| HTTP status codes | {_pairs(result.statuses)} |",
        f"| answers | {_pairs(result.outcomes)} |",
        f"| events delivered twice at the same moment | {result.overlapping} |",
        f"| events stored | {_pairs(result.events_stored)} |",
        f"| downloads created | {result.downloads} |",
        f"| signals fired | {_pairs(result.signals)} |",
        f"| producers, courses, lessons, learners | {_pairs(result.records)} |",
        "",
        "Result: "
        + (
            "PASS: every event stored once, one download and one of each signal per event,"
            " no shared row created twice, no 5xx."
            if result.ok
            else "FAIL: " + "; ".join(f.splitlines()[0] for f in result.failures)
        ),
    ]
    return "\n".join(lines)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in values.items()) or "-"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="scripts/loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 events, as the test suite")
    parser.add_argument("--events", type=int, help="distinct events (default 3000)")
    parser.add_argument("--deliveries", type=int, default=3, help="deliveries of each event")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--concurrency", type=int, default=24, help="connections in flight")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="random seed of the burst")
    parser.add_argument(
        "--task-workers",
        type=int,
        default=0,
        help="background mode with this many db_worker processes (default: synchronous)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_LOAD_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to create (dropped first) and fill (default: %(default)s)",
    )
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the figures into docs/performance.md (default: yes unless --quick)",
    )
    options = parser.parse_args(argv)
    if options.events is None:
        options.events = 150 if options.quick else 3000
    if options.docs is None:
        options.docs = not options.quick and not options.task_workers
    options.postgresql = db.server_version(options.database_url)
    print(
        f"Sending {options.events} events x {options.deliveries} deliveries"
        f" to {options.workers} gunicorn workers ...",
        flush=True,
    )
    result = run(
        options.database_url,
        events=options.events,
        deliveries=options.deliveries,
        workers=options.workers,
        threads=options.threads,
        concurrency=options.concurrency,
        client_processes=options.client_processes,
        seed=options.seed,
        keep_database=not options.drop,
        task_workers=options.task_workers,
    )
    text = markdown(result, options, " ".join(["./scripts/loadtest", *argv]))
    print(text)
    for failure in result.failures:
        print(f"\nFAILURE: {failure}", file=sys.stderr)
    report.RESULTS_DIR.mkdir(exist_ok=True)
    (report.RESULTS_DIR / "loadtest.json").write_text(json.dumps(asdict(result), indent=2))
    if options.docs:
        report.write_section("loadtest", text)
        print(f"Written into {report.PERFORMANCE_DOC.relative_to(report.ROOT)}.")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
