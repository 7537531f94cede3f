"""Races, retries and faults: raising and slow receivers, dying connections, killed workers.

Each test checks one guarantee of the design documented in
``eduzz_webhooks.processing``: on first delivery the event and its records
are written in one transaction; signals are sent after that commit; the
event's final status is written after the signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.db.models import Model
from django.dispatch import Signal
from django.test import Client

from eduzz_webhooks import signals
from eduzz_webhooks.models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from eduzz_webhooks.testing import SignalCapture, post_event, sample_payload
from tests.servers import kill_other_connections, kill_own_connection

Payload = dict[str, Any]
Connect = Callable[[Signal, Callable[..., Any]], None]

ROOT = Path(__file__).resolve().parent.parent
PROCESSED = WebhookEvent.Status.PROCESSED
RECEIVED = WebhookEvent.Status.RECEIVED
FAILED = WebhookEvent.Status.FAILED
UNAVAILABLE_DETAIL = "The database is unavailable; please retry later."
WAIT = 30.0  # seconds: generous bound for anything that should take well under one


def download(
    *,
    learner: str = "learner@eduzz.com",
    course: str = "4bba1d18c02755a13ee97521ae61958c3cf9e665",
    lesson: str = "3865",
) -> Payload:
    """A ``nutror.file_downloaded`` event with a fresh id and the given entities."""
    return sample_payload(
        "nutror.file_downloaded",
        learner={"email": learner, "name": "Aluna"},
        course={"hash": course, "title": f"Curso {course[:6]}"},
        lesson={"id": lesson, "title": f"Aula {lesson}"},
    )


@dataclass(frozen=True)
class Answer:
    event_id: str
    status_code: int
    body: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.body.get("status", ""))


def post(client: Client, payload: Payload) -> Answer:
    """Deliver ``payload`` as a WSGI server would.

    The test client keeps a thread's connection across requests; a server
    drops it after each one (``CONN_MAX_AGE=0``), a broken one included.
    """
    try:
        response = post_event(client, payload)
    finally:
        close_old_connections()
    # Whatever happens, Eduzz gets JSON: never Django's HTML error page.
    assert response["Content-Type"] == "application/json", response.content
    return Answer(payload["id"], response.status_code, response.json())


def deliver_concurrently(
    batches: Sequence[Sequence[Payload]], *, lockstep: bool = False
) -> list[Answer]:
    """Post each batch from its own thread and client, all starting together.

    With ``lockstep`` the threads meet at a barrier before every post, so
    that each round's deliveries hit the database at the same moment.
    """
    if lockstep:
        assert len({len(batch) for batch in batches}) == 1
    barrier = threading.Barrier(len(batches))
    answers: list[Answer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(batch: Sequence[Payload]) -> None:
        client = Client()
        try:
            for index, payload in enumerate(batch):
                if lockstep or index == 0:
                    barrier.wait(timeout=WAIT)
                answer = post(client, payload)
                with lock:
                    answers.append(answer)
        except BaseException as exc:
            barrier.abort()
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT)
    assert not any(thread.is_alive() for thread in threads), "a delivery hung"
    if errors:
        raise errors[0]
    return answers


def signal_counts(signal_log: SignalCapture, sent: Signal) -> Counter[str]:
    """How many times ``sent`` was sent for each event id."""
    return Counter(kwargs["event"].event_id for kwargs in signal_log.of(sent))


def unreferenced(model: type[Model]) -> list[Model]:
    """Rows of an entity that no download points to: left by a transaction that died."""
    return list(model._default_manager.filter(downloads__isnull=True))


def replay(*args: str) -> str:
    out = StringIO()
    call_command("eduzz_replay", *args, stdout=out)
    return out.getvalue()


# -- 1. a receiver that raises during a burst --------------------------------------------


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_raising_receiver_during_a_burst_fails_only_its_events_until_replayed(
    signal_log: SignalCapture, connect: Connect
) -> None:
    payloads = [download(learner=f"learner{i}@eduzz.com") for i in range(48)]
    doomed = {payload["id"] for payload in payloads[::3]}
    broken = threading.Event()
    broken.set()

    def fragile(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        if broken.is_set() and event.event_id in doomed:
            raise RuntimeError(f"CRM rejected {event.event_id}")

    connect(signals.file_downloaded, fragile)
    # The rows every event shares exist, as after a launch's first downloads: this burst is
    # about receivers. (Creating one row from several transactions at once can deadlock on
    # MariaDB, which answers a 503 for Eduzz to retry: docs/installation.rst, MariaDB.)
    data = payloads[0]["data"]
    producer = Producer.objects.ensure({"email": data["producer"]["email"]}, data["producer"])
    course = Course.objects.ensure(
        {"hash": data["course"]["hash"]},
        {"title": data["course"]["title"], "producer_id": producer.pk},
    )
    Lesson.objects.ensure(
        {"course": course, "external_id": data["lesson"]["id"]}, {"title": data["lesson"]["title"]}
    )
    # Every event twice, from two threads: Eduzz retries overlapping the first delivery.
    groups = [payloads[k::6] for k in range(6)]
    answers = deliver_concurrently([groups[k] + groups[(k + 1) % 6] for k in range(6)])

    assert [a.status_code for a in answers] == [200] * 96
    outcomes: dict[str, list[str]] = {}
    for answer in answers:
        outcomes.setdefault(answer.event_id, []).append(answer.outcome)
    for event_id, seen in outcomes.items():
        if event_id in doomed:
            # The second delivery either found it failed and processed it again, or
            # arrived while the first was still announcing it.
            assert "failed" in seen
            assert set(seen) <= {"failed", "duplicate"}
        else:
            assert sorted(seen) == ["duplicate", "processed"]

    assert WebhookEvent.objects.count() == 48
    assert FileDownload.objects.count() == 48  # the records of failed events stay
    assert Learner.objects.count() == 48
    announced = signal_counts(signal_log, signals.file_downloaded)
    received = signal_counts(signal_log, signals.event_received)
    for event in WebhookEvent.objects.all():
        # One announcement per processing, and a raising receiver stops no other one.
        assert announced[event.event_id] == received[event.event_id] == event.attempts
        if event.event_id in doomed:
            assert event.status == FAILED
            assert "Traceback (most recent call last)" in event.error
            assert f"RuntimeError: CRM rejected {event.event_id}" in event.error
            assert "fragile" in event.error
        else:
            assert (event.status, event.error, event.attempts) == (PROCESSED, "", 1)

    attempts = dict(WebhookEvent.objects.values_list("event_id", "attempts"))
    broken.clear()
    assert replay("--failed").endswith("Replayed 16 events.\n  processed: 16\n")

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {PROCESSED}
    assert WebhookEvent.objects.filter(error="").count() == 48
    assert FileDownload.objects.count() == 48
    assert Learner.objects.count() == 48
    assert Course.objects.count() == Lesson.objects.count() == Producer.objects.count() == 1
    for event in WebhookEvent.objects.all():
        replayed = event.event_id in doomed
        assert event.attempts == attempts[event.event_id] + replayed
        assert signal_counts(signal_log, signals.file_downloaded)[event.event_id] == event.attempts


# -- 2. a slow receiver ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_blocked_receiver_holds_up_neither_other_events_nor_its_redelivery(
    signal_log: SignalCapture, connect: Connect
) -> None:
    # All share the slow event's learner, course, lesson and producer rows: their
    # locks must be gone before its receivers run.
    slow = download()
    others = [download() for _ in range(12)]
    started, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def blocking(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        if event.event_id == slow["id"]:
            started.set()
            released.append(release.wait(timeout=WAIT))

    connect(signals.file_downloaded, blocking)
    slow_answer: list[Answer] = []

    def deliver_slow() -> None:
        try:
            slow_answer.append(post(Client(), slow))
        finally:
            connection.close()

    slow_thread = threading.Thread(target=deliver_slow)
    slow_thread.start()
    try:
        assert started.wait(timeout=WAIT)
        # Other events from four threads, and Eduzz re-sending the slow one, meanwhile.
        answers = deliver_concurrently([others[k::4] for k in range(4)] + [[slow]])
        # All of that finished while the slow receiver was still blocked.
        assert slow_thread.is_alive()
        assert not release.is_set()
        assert len(signal_log.of(signals.event_received)) == 12
    finally:
        release.set()
        slow_thread.join(timeout=WAIT)
    assert released == [True]  # it was released by us, not by its timeout

    by_id = {answer.event_id: answer for answer in answers}
    assert by_id.pop(slow["id"]).body["status"] == "duplicate"
    assert {(a.status_code, a.outcome) for a in by_id.values()} == {(200, "processed")}
    assert [(a.status_code, a.outcome) for a in slow_answer] == [(200, "processed")]
    every_id = [slow["id"], *(payload["id"] for payload in others)]
    expected = Counter(every_id)
    # The re-delivery fired nothing: one announcement of each kind per event.
    assert signal_counts(signal_log, signals.file_downloaded) == expected
    assert signal_counts(signal_log, signals.event_received) == expected
    assert WebhookEvent.objects.filter(status=PROCESSED, attempts=1).count() == 13
    assert FileDownload.objects.count() == 13
    assert Learner.objects.count() == Course.objects.count() == Lesson.objects.count() == 1


# -- 3. the database going away ----------------------------------------------------------


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_connections_killed_during_a_burst_lose_no_event_and_half_write_nothing(
    signal_log: SignalCapture,
) -> None:
    # Distinct learners, five shared courses: an entity row written by a transaction
    # that died would be one that no download references.
    payloads = [
        download(learner=f"learner{i}@eduzz.com", course=f"{i % 5:040d}", lesson=str(i % 7))
        for i in range(150)
    ]
    stop = threading.Event()
    killed: list[int] = []

    def kill_connections() -> None:
        pace = random.Random(3)  # timing jitter only
        try:
            with connection.cursor() as cursor:
                while not stop.is_set():
                    killed.append(kill_other_connections(cursor))
                    time.sleep(pace.uniform(0.02, 0.08))
        finally:
            connection.close()

    killer = threading.Thread(target=kill_connections)
    killer.start()
    try:
        answers = deliver_concurrently([payloads[k::6] for k in range(6)])
    finally:
        stop.set()
        killer.join(timeout=WAIT)
    connection.close()  # this thread's connection was killed too

    # Every answer is a decision Eduzz can act on: 200, or 503 to retry later.
    assert {a.status_code for a in answers} <= {200, 503}
    assert {a.outcome for a in answers if a.status_code == 200} <= {"processed"}
    assert all(a.body == {"detail": UNAVAILABLE_DETAIL} for a in answers if a.status_code == 503)
    unavailable = sum(a.status_code == 503 for a in answers)
    # The fault really happened: connections died in the middle of requests.
    assert sum(killed) > 0
    assert unavailable > 0

    # Nothing half-written: an event is stored exactly when its records are.
    stored = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert set(FileDownload.objects.values_list("event__event_id", flat=True)) == set(stored)
    assert set(stored.values()) <= {PROCESSED, RECEIVED}
    for model in (Producer, Course, Lesson, Learner):
        assert unreferenced(model) == []
    assert all(stored[a.event_id] == PROCESSED for a in answers if a.status_code == 200)
    # An event is announced only once stored; processed in the burst means announced once.
    burst = signal_counts(signal_log, signals.event_received)
    assert burst == signal_counts(signal_log, signals.file_downloaded)
    assert set(burst) <= set(stored)
    left_received = {event_id for event_id, status in stored.items() if status == RECEIVED}
    assert all(burst[event_id] == 1 for event_id in set(stored) - left_received)
    assert all(burst[event_id] <= 1 for event_id in left_received)

    # Eduzz retries everything, then the operator finishes what a kill left behind.
    redelivered = deliver_concurrently([payloads[k::3] for k in range(3)])
    assert {(a.status_code, a.outcome) for a in redelivered if a.event_id in stored} <= {
        (200, "duplicate")
    }
    assert {(a.status_code, a.outcome) for a in redelivered if a.event_id not in stored} <= {
        (200, "processed")
    }
    replay("--pending", "--older-than", "0")

    assert WebhookEvent.objects.filter(status=PROCESSED).count() == 150
    assert WebhookEvent.objects.count() == FileDownload.objects.count() == 150
    # One processing per event; the replay added a second one to those left received.
    assert set(WebhookEvent.objects.filter(attempts=2).values_list("event_id", flat=True)) == (
        left_received
    )
    assert WebhookEvent.objects.filter(attempts=1).count() == 150 - len(left_received)
    assert Learner.objects.count() == 150
    assert (Producer.objects.count(), Course.objects.count(), Lesson.objects.count()) == (1, 5, 35)
    total = signal_counts(signal_log, signals.event_received)
    assert total == signal_counts(signal_log, signals.file_downloaded)
    for payload in payloads:
        event_id = payload["id"]
        # Exactly once, except where a kill hit after the signals and before the
        # status update: the replay cannot know they were sent, so sends them again.
        extra = burst[event_id] if event_id in left_received else 0
        assert total[event_id] == 1 + extra


# -- 4. a worker process killed mid-processing -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_killed_while_its_receiver_runs_leaves_the_event_to_replay(
    signal_log: SignalCapture, tmp_path: Path
) -> None:
    payload = download()
    marker = tmp_path / "receiver-running"
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.crashing_worker", str(marker), json.dumps(payload)],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "EDUZZ_FAULTS_DB_NAME": str(connection.settings_dict["NAME"]),
            },
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + WAIT
        while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), log.read_text()
        assert marker.read_text() == payload["id"]
        # The records were committed before the receiver ran.
        event = WebhookEvent.objects.get()
        assert (event.status, event.attempts) == (RECEIVED, 1)
        assert FileDownload.objects.get().event == event
    finally:
        worker.kill()
        worker.wait(timeout=WAIT)
    assert worker.returncode == -signal.SIGKILL

    event.refresh_from_db()
    assert (event.status, event.processed_at, event.attempts) == (RECEIVED, None, 1)
    assert FileDownload.objects.get().event == event
    assert signal_log.calls == []

    out = replay("--pending", "--older-than", "0")
    assert f"{payload['id']}: processed" in out
    assert out.endswith("Replayed 1 event.\n  processed: 1\n")
    event.refresh_from_db()
    assert (event.status, event.error, event.attempts) == (PROCESSED, "", 2)
    assert event.processed_at is not None
    assert FileDownload.objects.get().event == event
    expected = Counter([payload["id"]])
    assert signal_counts(signal_log, signals.file_downloaded) == expected
    assert signal_counts(signal_log, signals.event_received) == expected

    assert replay("--pending", "--older-than", "0") == "Replayed 0 events.\n"
    event.refresh_from_db()
    assert event.attempts == 2
    assert len(signal_log.calls) == 2


# -- 5. concurrent events sharing rows ---------------------------------------------------


@pytest.mark.postgres  # InnoDB may deadlock here: docs/installation.rst, MariaDB
@pytest.mark.django_db(transaction=True)
def test_concurrent_events_sharing_entities_neither_deadlock_nor_conflict(
    signal_log: SignalCapture,
) -> None:
    # Half the events: one learner, course, lesson and producer. The other half: the
    # same learner and producer across four other courses (same lesson id in each).
    payloads = [
        download(course=f"{0 if i % 2 == 0 else 1 + (i // 2) % 4:040d}") for i in range(200)
    ]
    answers = deliver_concurrently([payloads[k::8] for k in range(8)], lockstep=True)

    assert len(answers) == 200
    assert {(a.status_code, a.outcome) for a in answers} == {(200, "processed")}
    assert WebhookEvent.objects.filter(status=PROCESSED, attempts=1).count() == 200
    assert FileDownload.objects.count() == 200
    assert (Learner.objects.count(), Producer.objects.count()) == (1, 1)
    assert (Course.objects.count(), Lesson.objects.count()) == (5, 5)
    assert Counter(FileDownload.objects.values_list("course__hash", flat=True)) == {
        f"{n:040d}": 100 if n == 0 else 25 for n in range(5)
    }
    expected = Counter(payload["id"] for payload in payloads)
    assert signal_counts(signal_log, signals.file_downloaded) == expected
    assert signal_counts(signal_log, signals.event_received) == expected


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_status_update_survives_a_connection_lost_after_the_signals(client, connect):
    """A connection that dies after the signals gets one retry, so the event ends processed."""

    def lose_connection(sender, **kwargs):
        with connection.cursor() as cursor, contextlib.suppress(Exception):
            kill_own_connection(cursor)

    connect(signals.event_received, lose_connection)
    response = post_event(client, sample_payload("nutror.file_downloaded"))
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert FileDownload.objects.count() == 1
