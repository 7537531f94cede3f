"""What the benchmark and the load test share: a gunicorn server and a load generator.

``Server`` runs the bench project under gunicorn (gthread workers, so that
connections are kept alive) on a socket bound here to a free loopback port,
and waits until every worker has loaded Django. ``fire`` sends prepared,
correctly signed deliveries over keep-alive connections from several client
processes at once and collects status codes and latencies. ``Catalog`` makes
``nutror.file_downloaded`` deliveries spread over producers, courses, lessons
and learners (``bench.seed`` fills the database from the same catalog).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import itertools
import json
import math
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from eduzz_webhooks.samples import encode
from eduzz_webhooks.signature import sign

from . import SECRET

ROOT = Path(__file__).resolve().parent.parent
FILE_DOWNLOADED = "nutror.file_downloaded"


# -- deliveries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One HTTP request: the exact body and its signature."""

    event_id: str
    body: bytes
    signature: str


@dataclass(frozen=True)
class Catalog:
    """The producers, courses, lessons and learners events are drawn from.

    Names are functions of the index, so that ``bench.seed`` can write the same
    rows in SQL and the deliveries then meet them.
    """

    producers: int
    courses: int
    lessons_per_course: int
    learners: int

    @staticmethod
    def producer_email(p: int) -> str:
        return f"producer{p}@bench.example"

    @staticmethod
    @functools.cache
    def course_hash(c: int) -> str:
        return hashlib.md5(f"course-{c}".encode()).hexdigest()

    def producer_of(self, c: int) -> int:
        return c % self.producers

    def lesson_id(self, c: int, lesson: int) -> str:
        return str(c * self.lessons_per_course + lesson + 1000)

    @staticmethod
    def learner_email(n: int) -> str:
        return f"learner{n}@bench.example"

    def draw(self, rng: random.Random) -> tuple[int, int, int]:
        """(course, lesson, learner): some courses are much more popular than others."""
        course = int(self.courses * rng.random() ** 2)
        return course, rng.randrange(self.lessons_per_course), rng.randrange(self.learners)

    def payload(
        self, event_id: str, course: int, lesson: int, learner: int, created: str
    ) -> dict[str, Any]:
        p = self.producer_of(course)
        return {
            "id": event_id,
            "event": FILE_DOWNLOADED,
            "data": {
                "producer": {"email": self.producer_email(p), "name": f"Produtor {p}"},
                "learner": {"email": self.learner_email(learner), "name": f"Aluno {learner}"},
                "course": {"hash": self.course_hash(course), "title": f"Curso {course}"},
                "lesson": {
                    "id": self.lesson_id(course, lesson),
                    "title": f"Aula {lesson + 1} do curso {course}",
                },
                "createdAt": created,
            },
            "sentDate": created.replace("Z", ".000Z"),
        }


def new_event_ids(rng: random.Random, count: int) -> list[str]:
    """Distinct ids shaped like Eduzz's (25 lowercase base-36 characters)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    ids: set[str] = set()
    while len(ids) < count:
        ids.add("".join(rng.choices(alphabet, k=25)))
    return sorted(ids)


def file_downloaded_events(
    catalog: Catalog, rng: random.Random, count: int
) -> list[dict[str, Any]]:
    """``count`` distinct ``nutror.file_downloaded`` envelopes drawn from ``catalog``."""
    ids = new_event_ids(rng, count)
    rng.shuffle(ids)
    events = []
    for event_id in ids:
        course, lesson, learner = catalog.draw(rng)
        second = rng.randrange(86_400 * 30)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_727_740_800 + second))
        events.append(catalog.payload(event_id, course, lesson, learner, created))
    return events


def signed(payload: dict[str, Any], secret: str = SECRET) -> Delivery:
    body = encode(payload)
    return Delivery(payload["id"], body, sign(secret, body))


# -- the server ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    workers: int
    threads: int
    settings: str = "bench.settings"
    background: bool = False
    task_engine: str = "db"  # background mode's backend: see bench.settings
    attempt_timeout: float | None = None  # the app's ATTEMPT_TIMEOUT, seconds (default 300)
    receiver_pause: float = 0.0  # seconds the load test's last receiver waits


class ServerError(RuntimeError):
    pass


class Server:
    """The bench project under gunicorn on 127.0.0.1; a context manager.

    Each run gets a temporary directory for the workers' readiness files, their
    statement counts and gunicorn's log; ``stop()`` reads the counts
    (``stats()``) and the log's end (``log_tail()``), then removes it.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.run_dir = Path(tempfile.mkdtemp(prefix="eduzz-bench-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._stats: Counter[str] = Counter()
        self._log = ""

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.run_dir / "gunicorn.log"

    def start(self, timeout: float = 90) -> None:
        # Bound here and handed over, so the port can't be taken in between.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        self.port = listener.getsockname()[1]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.config.settings,
            "BENCH_DATABASE_URL": self.config.database_url,
            "BENCH_RUN_DIR": str(self.run_dir),
            "BENCH_BACKGROUND": "1" if self.config.background else "0",
            "BENCH_TASK_ENGINE": self.config.task_engine,
            "PYTHONPATH": str(ROOT),
        }
        env.pop("BENCH_ATTEMPT_TIMEOUT", None)
        if self.config.attempt_timeout is not None:
            env["BENCH_ATTEMPT_TIMEOUT"] = str(self.config.attempt_timeout)
        env["BENCH_RECEIVER_PAUSE"] = str(self.config.receiver_pause)
        command = [
            sys.executable, "-m", "gunicorn", "bench.wsgi:application",
            "--bind", f"fd://{listener.fileno()}",
            "--worker-class", "gthread",
            "--workers", str(self.config.workers),
            "--threads", str(self.config.threads),
            "--keep-alive", "120",
            "--timeout", "120",
            "--graceful-timeout", "30",
            "--config", "python:bench.gunicorn_conf",
            "--log-level", "warning",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                pass_fds=(listener.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        listener.close()
        deadline = time.monotonic() + timeout
        while len(list(self.run_dir.glob("ready-*"))) < self.config.workers:
            if self.process.poll() is not None:
                self.stop()
                raise ServerError(f"gunicorn exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"gunicorn workers not ready in {timeout:.0f} s")
            time.sleep(0.05)
        status, _ = request(self.port, "GET", "/ready/")
        if status != 200:
            self.stop()
            raise ServerError(f"readiness probe answered {status}:\n{self.log_tail()}")

    def stop(self, timeout: float = 60) -> None:
        """Stop gracefully (workers write their counts), killing only if that hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group of this gunicorn only
            process.wait(10)
        for path in self.run_dir.glob("stats-*.json"):
            self._stats.update(json.loads(path.read_text()))
        if self.log_path.exists():
            self._log = self.log_path.read_text(errors="replace")
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def worker_pids(self) -> list[int]:
        """The pids of gunicorn's live workers that have loaded Django (Linux: read in /proc)."""
        if self.process is None:
            return []
        ready = {path.name.removeprefix("ready-") for path in self.run_dir.glob("ready-*")}
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (name) state ppid ...": the name may hold spaces, so split after ")".
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            live = fields[0] != "Z" and stat.parent.name in ready
            if live and int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def stats(self) -> Counter[str]:
        """Statement counts summed over every worker (see ``bench.counting``), once stopped."""
        return Counter(self._stats)

    def log_tail(self, lines: int = 30) -> str:
        text = self._log
        if not text and self.log_path.exists():
            text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- the load generator ----------------------------------------------------------------


@dataclass
class LoadResult:
    """What ``fire`` measured; latencies in seconds, measured deliveries only.

    ``statuses`` counts each delivery's last answer (0: none); ``failed`` the
    attempts that got no answer or a 5xx, retried ones included.
    """

    sent: int
    elapsed: float
    latencies: list[float]
    statuses: Counter[int]
    outcomes: Counter[str]
    warmup_statuses: Counter[int]
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False
    # With ``details``: (event id, start, end) of every measured request.
    timeline: list[tuple[str, float, float]] = field(default_factory=list)
    failed: int = 0

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def fire(
    port: int,
    path: str,
    deliveries: list[Delivery],
    *,
    concurrency: int,
    processes: int = 2,
    warmup: list[Delivery] | None = None,
    timeout: float = 600,
    details: bool = False,
    retries: int = 0,
    retry_pause: float = 0.1,
) -> LoadResult:
    """POST every delivery to ``path``, ``concurrency`` requests in flight at a time.

    ``concurrency`` keep-alive connections are spread over ``processes`` client
    processes (one thread per connection). The ``warmup`` deliveries go first
    on the same connections and are not timed; every connection then waits
    for the others, and the clock starts. Deliveries are dealt to processes
    round-robin, so neighbours in the list are sent at about the same time.
    With ``details``, the ``status`` field of each JSON answer is counted and
    the timeline of the requests is kept. A delivery that gets no answer or a
    5xx is sent again, up to ``retries`` times, ``retry_pause`` seconds apart,
    as Eduzz retries it (its latency then spans every attempt).
    """
    processes = max(1, min(processes, concurrency))
    warmup = warmup or []
    context = multiprocessing.get_context("spawn")
    threads = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    barrier = context.Barrier(concurrency)
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    deadline = time.time() + timeout
    workers = [
        context.Process(
            target=_client,
            args=(
                port, path, deliveries[i::processes], warmup[i::processes],
                threads[i], barrier, results, deadline, details, retries, retry_pause,
            ),
            daemon=True,
        )
        for i in range(processes)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    parts = []
    try:
        for _ in workers:
            parts.append(results.get(timeout=max(1.0, deadline - time.time() + 30)))
    except queue.Empty:
        pass
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        results.close()
        results.join_thread()
    if len(parts) < len(workers):
        return LoadResult(0, 0.0, [], Counter(), Counter(), Counter(), ["client lost"], True)
    started = min((p["started"] for p in parts if p["sent"]), default=0.0)
    ended = max((p["ended"] for p in parts if p["sent"]), default=0.0)
    return LoadResult(
        sent=sum(p["sent"] for p in parts),
        elapsed=ended - started,
        latencies=list(itertools.chain.from_iterable(p["latencies"] for p in parts)),
        statuses=sum((Counter(p["statuses"]) for p in parts), Counter()),
        outcomes=sum((Counter(p["outcomes"]) for p in parts), Counter()),
        warmup_statuses=sum((Counter(p["warmup_statuses"]) for p in parts), Counter()),
        errors=list(itertools.chain.from_iterable(p["errors"] for p in parts))[:10],
        timed_out=any(p["timed_out"] for p in parts),
        timeline=list(itertools.chain.from_iterable(p["timeline"] for p in parts)),
        failed=sum(p["failed"] for p in parts),
    )


def _client(
    port: int,
    path: str,
    deliveries: list[Delivery],
    warmup: list[Delivery],
    threads: int,
    barrier: Any,
    results: Any,
    deadline: float,
    details: bool,
    retries: int,
    retry_pause: float,
) -> None:
    """One client process: ``threads`` connections, each sending until the lists run out."""
    lock = threading.Lock()
    part: dict[str, Any] = {
        "sent": 0,
        "started": math.inf,
        "ended": 0.0,
        "latencies": [],
        "statuses": Counter(),
        "outcomes": Counter(),
        "warmup_statuses": Counter(),
        "errors": [],
        "timed_out": False,
        "timeline": [],
        "failed": 0,
    }
    # next() on one shared list iterator is atomic under the GIL.
    warm_items = iter(warmup)
    items = iter(deliveries)

    def run() -> None:
        try:
            connection = _connect(port)
        except OSError as exc:
            barrier.abort()  # the others must not wait for this connection
            with lock:
                part["errors"].append(f"cannot connect: {exc}")
                part["timed_out"] = True
            return
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        outcomes: Counter[str] = Counter()
        warm: Counter[int] = Counter()
        errors: list[str] = []
        timeline: list[tuple[str, float, float]] = []
        started, ended, timed_out, failed = math.inf, 0.0, False, 0
        try:
            for delivery in warm_items:
                status, _ = _post(connection, path, delivery, errors)
                warm[status] += 1
                if time.time() > deadline:
                    timed_out = True
                    break
            barrier.wait(timeout=max(1.0, deadline - time.time()))
            for delivery in items:
                if time.time() > deadline:
                    timed_out = True
                    break
                begin = time.perf_counter()
                for attempt in range(retries + 1):
                    if attempt:
                        time.sleep(retry_pause)
                    status, body = _post(connection, path, delivery, errors)
                    if 0 < status < 500:
                        break
                    failed += 1
                end = time.perf_counter()
                started, ended = min(started, begin), max(ended, end)
                latencies.append(end - begin)
                statuses[status] += 1
                if details:
                    outcomes[_outcome(body)] += 1
                    timeline.append((delivery.event_id, begin, end))
        except threading.BrokenBarrierError:
            timed_out = True
            errors.append("another client failed before the measure started")
        finally:
            connection.close()
            with lock:
                part["sent"] += len(latencies)
                part["started"] = min(part["started"], started)
                part["ended"] = max(part["ended"], ended)
                part["latencies"].extend(latencies)
                part["statuses"].update(statuses)
                part["outcomes"].update(outcomes)
                part["warmup_statuses"].update(warm)
                part["errors"].extend(errors)
                part["timed_out"] |= timed_out
                part["timeline"].extend(timeline)
                part["failed"] += failed

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    part["statuses"] = dict(part["statuses"])
    part["outcomes"] = dict(part["outcomes"])
    part["warmup_statuses"] = dict(part["warmup_statuses"])
    results.put(part)


def _connect(port: int) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _post(
    connection: http.client.HTTPConnection, path: str, delivery: Delivery, errors: list[str]
) -> tuple[int, bytes]:
    """Send one delivery; status 0 when the connection failed (it is then reopened)."""
    headers = {"Content-Type": "application/json", "x-signature": delivery.signature}
    try:
        connection.request("POST", path, body=delivery.body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        connection.close()
        with contextlib.suppress(OSError):
            connection.connect()
            if connection.sock is not None:
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return 0, b""


def _outcome(body: bytes) -> str:
    try:
        return str(json.loads(body).get("status", "?"))
    except (ValueError, AttributeError):
        return "?"
