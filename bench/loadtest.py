"""The launch-burst load test: many deliveries of the same events at once, on PostgreSQL.

A course launch makes thousands of learners download files within minutes,
and Eduzz delivers each event more than once (retries overlap). This sends
``--events`` distinct ``nutror.file_downloaded`` events, each ``--deliveries``
times, in random order, most copies of an event at the same moment on
different connections and some of them late, to the bench project under
gunicorn with several workers. Receivers in ``bench.settings_loadtest``
count every signal in a table without a unique constraint.

With ``--task-workers N`` the app runs in background mode: each new event is
stored with one task, which N worker processes run while the burst goes on,
django-tasks-db's ``db_worker`` (``--engine db``) or Celery workers fed
through django-tasks-celery by a Redis broker (``--engine celery``). The test
then waits until no event waits for its task any more.

With ``--kill-every SECONDS`` a random gunicorn worker is killed (SIGKILL;
gunicorn starts another) that often while the burst goes on, at most
``--max-kills`` times (the last signal receiver pausing ``--receiver-pause``
seconds, as a receiver doing some work would), so that requests die mid-processing. A delivery that
got no answer or a 5xx is sent again, like Eduzz does, up to ``--retries``
times. The app's ``ATTEMPT_TIMEOUT`` is set to ``--attempt-timeout``; the
test waits that long after the burst, then sends every distinct event once
more (no operator command), and checks that every event is processed: each
signal sent at least once per event (a worker killed after the signals,
before the event's status was written, announces it again on the re-send).

Then it checks, in the database, that each distinct event was stored once,
made one download and fired each signal once, that no producer, course,
lesson or learner was created twice, and that no request got an error.
Run with ``./scripts/loadtest`` (``--help`` for the knobs); it exits non-zero
when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    task_engine: str = ""  # background mode: "db" (db_worker) or "celery"
    tasks_seconds: float = 0.0  # background mode: from the last answer to the last event done
    # With killed workers (--kill-every):
    workers_killed: int = 0
    requests_failed: int = 0  # attempts that got no answer or a 5xx (then retried)
    gave_up: int = 0  # deliveries whose every attempt failed
    unfinished: int = 0  # distinct events not processed after the burst and its retries
    taken_over: int = 0  # events processed by more than one attempt (a re-delivery took over)
    resend_statuses: dict[str, int] = field(default_factory=dict)
    resend_outcomes: dict[str, int] = field(default_factory=dict)
    announced_twice: dict[str, int] = field(default_factory=dict)  # events per signal

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
    engine: str = "db",
    celery_concurrency: int = 2,
    kill_every: float = 0.0,
    max_kills: int = 20,
    retries: int = 5,
    attempt_timeout: float = 2.0,
    receiver_pause: float = 0.05,
) -> LoadReport:
    """Create the database, fire the burst, check the outcome. See the module's docstring.

    ``task_workers`` > 0: background mode, with that many worker processes of
    ``engine`` (``db`` or ``celery``; each Celery worker a prefork pool of
    ``celery_concurrency`` processes). ``kill_every`` > 0: kill a gunicorn
    worker that often during the burst (at most ``max_kills``), retry failed
    deliveries ``retries`` times, then re-send every event once after
    ``attempt_timeout`` seconds (the app's ``ATTEMPT_TIMEOUT``); the last
    receiver then waits ``receiver_pause`` seconds, so that kills land between
    an event's signals and its status too.
    """
    if kill_every and task_workers:
        raise ValueError("killing gunicorn workers is a test of the synchronous mode")
    rng = random.Random(seed)
    catalog = launch_catalog(events)
    payloads = harness.file_downloaded_events(catalog, rng, events)
    unique = [harness.signed(payload) for payload in payloads]
    order = burst(unique, deliveries, 2 * concurrency, rng)
    background = task_workers > 0
    result = LoadReport(
        events=events,
        deliveries_per_event=deliveries,
        task_workers=task_workers,
        task_engine=engine if background else "",
    )

    db.recreate(database_url)
    try:
        db.migrate(database_url, SETTINGS)
        config = harness.ServerConfig(
            database_url,
            workers,
            threads,
            settings=SETTINGS,
            background=background,
            task_engine=engine,
            attempt_timeout=attempt_timeout if kill_every else None,
            receiver_pause=receiver_pause if kill_every else 0.0,
        )
        task_processes = TaskWorkers(database_url, task_workers, engine, celery_concurrency)
        # The workers start while gunicorn does; the burst waits for both.
        with task_processes, harness.Server(config) as server:
            task_processes.wait_until_ready()
            killer = WorkerKiller(server, database_url, kill_every, max_kills, seed)
            with killer if kill_every else contextlib.nullcontext():
                load = harness.fire(
                    server.port,
                    "/eduzz/",
                    order,
                    concurrency=concurrency,
                    processes=client_processes,
                    timeout=timeout,
                    details=True,
                    retries=retries if kill_every else 0,
                    retry_pause=0.2,
                )
            if kill_every:
                resend = _resend_after_timeout(
                    server.port, database_url, unique, result, killer, attempt_timeout,
                    concurrency=concurrency, processes=client_processes, timeout=timeout,
                )  # fmt: skip
            if background:
                started = time.monotonic()
                waiting = _wait_for_tasks(database_url, timeout)
                result.tasks_seconds = time.monotonic() - started
                if waiting:
                    result.failures.append(
                        f"{waiting} events still wait for their task after {timeout:.0f} s"
                    )
        result.requests = load.sent
        result.seconds = load.elapsed
        result.p50_ms = load.percentile(0.50) * 1000
        result.p99_ms = load.percentile(0.99) * 1000
        result.statuses = {str(k): v for k, v in sorted(load.statuses.items())}
        result.outcomes = dict(sorted(load.outcomes.items()))
        result.overlapping = overlapping(load.timeline)
        if load.timed_out or load.sent != len(order):
            result.failures.append(f"only {load.sent} of {len(order)} requests were answered")
        if kill_every:
            _check_killed_burst(load, result, resend, events)
        else:
            if load.errors:
                result.failures.append(f"connection errors, first: {load.errors[0]}")
            errors = sum(v for k, v in load.statuses.items() if k >= 500 or k == 0)
            if errors:
                result.failures.append(f"{errors} requests got a 5xx or no answer")
            if set(load.statuses) - {200}:
                result.failures.append(f"answers other than 200: {result.statuses}")
            first = "queued" if background else "processed"
            expected_outcomes = {first: events, "duplicate": events * (deliveries - 1)}
            if result.outcomes != {k: v for k, v in expected_outcomes.items() if v}:
                result.failures.append(
                    f"answers said {result.outcomes}, expected {expected_outcomes}"
                )
        _check_database(database_url, result, payloads, at_least_once=bool(kill_every))
        if result.failures:
            result.failures.append(f"gunicorn log:\n{server.log_tail()}")
            if background:
                result.failures.append(task_processes.keep_log())
    finally:
        if not keep_database:
            db.drop(database_url)
    return result


class WorkerKiller:
    """Kills a random gunicorn worker (SIGKILL) every ``every`` seconds, from a thread.

    It starts once the first event is stored (the burst has begun) and stops
    after ``limit`` kills or when the block ends. Only workers that have
    loaded Django are chosen (``Server.worker_pids``), never the master, which
    starts a new worker for each one killed, and never the last one ready: a
    new worker takes seconds to load Django on a busy machine, and the burst
    must go on meanwhile.
    """

    def __init__(
        self, server: harness.Server, database_url: str, every: float, limit: int, seed: int
    ) -> None:
        self.server = server
        self.database_url = database_url
        self.every = every
        self.limit = limit
        self.rng = random.Random(seed)
        self.killed: list[int] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            with db.connect(self.database_url) as conn:
                while not self._stop.wait(0.02):
                    row = conn.execute("SELECT EXISTS (SELECT FROM eduzz_webhooks_webhookevent)")
                    if row.fetchone() == (True,):
                        break
            while len(self.killed) < self.limit and not self._stop.wait(self.every):
                pids = self.server.worker_pids()
                if len(pids) < 2:
                    continue  # the others are being replaced: the next tick
                pid = self.rng.choice(pids)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
        except Exception as exc:  # reported as a failure of the run
            self.error = f"{type(exc).__name__}: {exc}"


def _resend_after_timeout(
    port: int,
    database_url: str,
    unique: list[harness.Delivery],
    result: LoadReport,
    killer: WorkerKiller,
    attempt_timeout: float,
    **fire_options: Any,
) -> harness.LoadResult:
    """Wait out ``ATTEMPT_TIMEOUT``, then send every distinct event once more, as Eduzz would.

    Notes the kills and how many events the burst left unfinished first.
    """
    result.workers_killed = len(killer.killed)
    if killer.error:
        result.failures.append(f"killing workers failed: {killer.error}")
    with db.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM eduzz_webhooks_webhookevent WHERE status = 'processed'"
        ).fetchone()
    result.unfinished = len(unique) - (int(row[0]) if row is not None else 0)
    time.sleep(attempt_timeout + 0.5)  # the last attempt started before the burst ended
    return harness.fire(port, "/eduzz/", unique, details=True, **fire_options)


def _check_killed_burst(
    load: harness.LoadResult, result: LoadReport, resend: harness.LoadResult, events: int
) -> None:
    result.requests_failed = load.failed
    result.gave_up = sum(v for k, v in load.statuses.items() if k >= 500 or k == 0)
    if result.workers_killed == 0 or load.failed == 0:
        result.failures.append(
            f"{result.workers_killed} workers killed, {load.failed} requests failed:"
            " the burst was over before the kills, or they hit no request"
        )
    if set(load.statuses) - {200, 0} - set(range(500, 600)):
        result.failures.append(f"answers other than 200, 5xx or none: {result.statuses}")
    if set(load.outcomes) - {"processed", "duplicate", "?"}:
        result.failures.append(f"answers said {result.outcomes}")
    result.resend_statuses = {str(k): v for k, v in sorted(resend.statuses.items())}
    result.resend_outcomes = dict(sorted(resend.outcomes.items()))
    if resend.timed_out or resend.errors or resend.statuses != Counter({200: events}):
        result.failures.append(
            f"the re-send after ATTEMPT_TIMEOUT got {result.resend_statuses}"
            + (f", first error: {resend.errors[0]}" if resend.errors else "")
        )
    if set(resend.outcomes) - {"processed", "duplicate"}:
        result.failures.append(f"the re-send's answers said {result.resend_outcomes}")


class TaskWorkerError(RuntimeError):
    pass


class TaskWorkers:
    """``count`` task worker processes of the bench project, running until the block ends.

    ``engine`` ``db``: django-tasks-db's ``db_worker``, which polls the task
    table. ``celery``: ``celery worker`` processes, each a prefork pool of
    ``concurrency`` processes, on the broker of ``bench.settings``; each purges
    the bench's queue as it starts (tasks left by an aborted run) and is ready
    once it consumes (``wait_until_ready``). Each worker leads a process group,
    so that one which does not stop on SIGTERM is killed with its pool. Their
    output goes to one log: ``keep_log()`` saves it for a failed run.
    """

    def __init__(self, database_url: str, count: int, engine: str, concurrency: int = 2) -> None:
        if engine not in ("db", "celery"):
            raise ValueError(f"unknown task engine {engine!r}: db or celery")
        self.database_url = database_url
        self.count = count
        self.engine = engine
        self.concurrency = concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        # From __enter__ to stop(): the readiness files and the log; then the log here.
        self.run_dir: Path | None = None
        self.log = ""

    def command(self, index: int) -> list[str]:
        if self.engine == "db":
            return [sys.executable, "-m", "django", "db_worker", "--no-startup-delay",
                    "--interval", "0.05"]  # fmt: skip
        return [
            sys.executable, "-m", "celery", "--app", "bench.celery", "worker",
            "--hostname", f"bench{index}@%h",
            "--pool", "prefork", "--concurrency", str(self.concurrency),
            "--loglevel", "INFO", "--purge",
            # Nothing to agree on with other workers: no start-up sync, no chatter.
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip

    def __enter__(self) -> TaskWorkers:
        self.run_dir = Path(tempfile.mkdtemp(prefix="eduzz-task-workers-"))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "BENCH_DATABASE_URL": self.database_url,
            "BENCH_BACKGROUND": "1",
            "BENCH_TASK_ENGINE": self.engine,
            "BENCH_READY_DIR": str(self.run_dir),
            "PYTHONPATH": str(harness.ROOT),
        }
        env.pop("BENCH_RUN_DIR", None)
        try:
            with (self.run_dir / "workers.log").open("ab") as log:
                for index in range(self.count):
                    self.processes.append(
                        subprocess.Popen(
                            self.command(index),
                            cwd=harness.ROOT,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until each Celery worker consumes (it touches a file: ``bench.celery``).

        A db_worker needs no wait (tasks wait in the database for it), only not
        to have exited.
        """
        assert self.run_dir is not None, "start the workers first (with ...)"
        deadline = time.monotonic() + timeout
        while True:
            if any(process.poll() is not None for process in self.processes):
                raise TaskWorkerError(f"a task worker exited at start:\n{self.log_tail()}")
            if self.engine == "db" or len(list(self.run_dir.glob("ready-*"))) >= self.count:
                return
            if time.monotonic() > deadline:
                raise TaskWorkerError(
                    f"Celery workers not ready in {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM: a worker finishes the tasks it runs, then exits; killed if that hangs."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # this worker's group only
                process.wait(10)
        self.processes = []
        if self.run_dir is not None:
            self.log = self._read_log()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._read_log().splitlines()[-lines:])

    def _read_log(self) -> str:
        if self.run_dir is None:
            return self.log
        return (self.run_dir / "workers.log").read_text(errors="replace")

    def keep_log(self) -> str:
        """Save the whole log in bench/results/; a failure's line: where, and its end."""
        report.RESULTS_DIR.mkdir(exist_ok=True)
        path = report.RESULTS_DIR / "task-workers.log"
        path.write_text(self.log)
        return f"task workers' log, whole in {path}:\n{self.log_tail()}"


def _wait_for_tasks(url: str, timeout: float) -> int:
    """Wait until no stored event waits for its task; return how many still do."""
    deadline = time.monotonic() + timeout
    with db.connect(url) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM eduzz_webhooks_webhookevent WHERE status = 'received'"
            ).fetchone()
            waiting = int(row[0]) if row is not None else 0
            if not waiting or time.monotonic() > deadline:
                return waiting
            time.sleep(0.1)


def _check_database(
    url: str, result: LoadReport, payloads: list[dict[str, Any]], *, at_least_once: bool = False
) -> None:
    """Each event stored once, processed, one download; each signal once per event (with
    ``at_least_once``, at least once: ``result.announced_twice`` counts the others); each
    shared row once.
    """
    events = len(payloads)
    sent_ids = {payload["id"] for payload in payloads}
    with db.connect(url) as conn:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query).fetchall()

        stored = rows("SELECT event_id, status FROM eduzz_webhooks_webhookevent")
        (taken_over,) = rows("SELECT count(*) FROM eduzz_webhooks_webhookevent WHERE attempts > 1")
        result.taken_over = int(taken_over[0])
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
            if at_least_once:
                result.announced_twice[name] = sum(1 for n in got.values() if n > 1)
            if set(got) != sent_ids or (not at_least_once and set(got.values()) != {1}):
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
                f"| background mode | {_task_workers(result, options)}; no event waiting"
                f" {result.tasks_seconds:.1f} s after the last answer |"
            ]
            if result.task_workers
            else []
        ),
        *(_killed_rows(result, options) if options.kill_every else []),
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
            "PASS: every event stored once and processed, one download and each signal at"
            " least once per event, no shared row created twice, no 5xx in the re-send."
            if result.ok and options.kill_every
            else "PASS: every event stored once, one download and one of each signal per event,"
            " no shared row created twice, no 5xx."
            if result.ok
            else "FAIL: " + "; ".join(f.splitlines()[0] for f in result.failures)
        ),
    ]
    return "\n".join(lines)


def _killed_rows(result: LoadReport, options: argparse.Namespace) -> list[str]:
    return [
        f"| gunicorn workers killed (SIGKILL) | {result.workers_killed}, one every"
        f" {options.kill_every} s; {result.requests_failed} requests failed (no answer or 5xx),"
        f" each retried up to {options.retries} times; {result.gave_up} deliveries gave up |",
        f"| events left unfinished by the burst | {result.unfinished} |",
        f"| events taken over by a re-delivery (more than one attempt) | {result.taken_over} |",
        f"| every event re-sent once after ATTEMPT_TIMEOUT ({options.attempt_timeout} s) |"
        f" {_pairs(result.resend_statuses)}; answers {_pairs(result.resend_outcomes)} |",
        f"| events announced twice | {_pairs(result.announced_twice)} |",
    ]


def _task_workers(result: LoadReport, options: argparse.Namespace) -> str:
    if result.task_engine == "celery":
        return (
            f"{result.task_workers} Celery workers x {options.celery_concurrency} prefork"
            " processes (django-tasks-celery, Redis broker)"
        )
    return f"{result.task_workers} db_worker processes (django-tasks-db)"


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
        help="background mode with this many task worker processes (default: synchronous)",
    )
    parser.add_argument(
        "--engine",
        choices=("db", "celery"),
        default="db",
        help="background mode's task workers: db, django-tasks-db's db_worker (the default);"
        " celery, Celery workers through django-tasks-celery, broker BENCH_CELERY_BROKER_URL"
        " (default redis://127.0.0.1:6379/5)",
    )
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        default=2,
        help="processes in each Celery worker's prefork pool (default: %(default)s)",
    )
    parser.add_argument(
        "--kill-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="SIGKILL a random gunicorn worker this often during the burst (synchronous mode"
        " only), retry failed deliveries, then re-send every event once after ATTEMPT_TIMEOUT",
    )
    parser.add_argument(
        "--max-kills", type=int, default=20, help="with --kill-every: at most this many kills"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="with --kill-every: times a delivery with no answer or a 5xx is sent again",
    )
    parser.add_argument(
        "--attempt-timeout",
        type=float,
        default=2.0,
        help="with --kill-every: the app's ATTEMPT_TIMEOUT in seconds, waited before the re-send",
    )
    parser.add_argument(
        "--receiver-pause",
        type=float,
        default=0.05,
        help="with --kill-every: seconds the last signal receiver waits (default: %(default)s)",
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
    if options.engine != "db" and not options.task_workers:
        parser.error(f"--engine {options.engine} needs --task-workers N")
    if options.kill_every and options.task_workers:
        parser.error("--kill-every tests the synchronous mode: no --task-workers")
    if options.events is None:
        options.events = 150 if options.quick else 3000
    if options.docs is None:
        options.docs = not options.quick and not options.task_workers and not options.kill_every
    options.postgresql = db.server_version(options.database_url)
    background = f", {options.task_workers} {options.engine} task workers"
    print(
        f"Sending {options.events} events x {options.deliveries} deliveries"
        f" to {options.workers} gunicorn workers{background if options.task_workers else ''} ...",
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
        engine=options.engine,
        celery_concurrency=options.celery_concurrency,
        kill_every=options.kill_every,
        max_kills=options.max_kills,
        retries=options.retries,
        attempt_timeout=options.attempt_timeout,
        receiver_pause=options.receiver_pause,
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
