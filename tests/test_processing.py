"""Processing without HTTP: replay, crash recovery, concurrency on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from eduzz_webhooks import processing, signals
from eduzz_webhooks.models import FileDownload, Learner, Lesson, Producer, WebhookEvent
from eduzz_webhooks.payloads import parse_envelope
from eduzz_webhooks.testing import encode, post_event, sample_payload


def store_failed(payload):
    """Store an event as a crashed or failed first attempt would leave it."""
    envelope = parse_envelope(encode(payload))
    return WebhookEvent.objects.create(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        payload=envelope.payload,
        status=WebhookEvent.Status.FAILED,
        error="boom",
        attempts=1,
    )


@pytest.mark.django_db(transaction=True)
def test_records_failure_keeps_the_event_as_failed(signal_log, monkeypatch):
    # A bug after some records were written: they must all go, the event stays.
    envelope = parse_envelope(encode(sample_payload("nutror.file_downloaded")))
    store = processing._store

    def exploding_store(event, data, new):
        store(event, data, new)
        raise RuntimeError("bug while storing")

    monkeypatch.setattr(processing, "_store", exploding_store)
    result = processing.receive(envelope)
    assert result.outcome is processing.Outcome.FAILED
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert "RuntimeError: bug while storing" in event.error
    assert FileDownload.objects.count() == 0  # no half-written records
    assert Learner.objects.count() == 0
    assert signal_log.calls == []


def waiting_for_locks() -> int:
    """How many other connections wait to insert a producer (for a lock, on PostgreSQL)."""
    if connection.vendor == "mysql":  # its lock views lag behind
        sql = (
            "SELECT COUNT(*) FROM information_schema.processlist"
            " WHERE info LIKE 'INSERT INTO `eduzz_webhooks_producer`%%'"
        )
    else:
        sql = (
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def delivered(payload):
    """A delivery's outcome, through the endpoint."""
    return post_event(Client(), payload).json()["status"]


def run_as_a_task(payload):
    """A queued event's outcome, processed as its task does."""
    envelope = parse_envelope(encode(payload))
    processing.receive(envelope, enqueue=lambda event: None)
    return processing.process(processing.start(envelope.event_id)).outcome.value


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [delivered, run_as_a_task], ids=["delivery", "task"])
def test_events_that_deadlock_creating_one_row_are_processed(signal_log, run):
    # InnoDB's own example: a transaction inserts a producer and rolls back while two
    # events wait to insert it too; on MariaDB they then deadlock, and the database
    # aborts one of them whole. It is run again, not answered 503 or left to a takeover.
    payload = sample_payload("nutror.file_downloaded")
    inserted, rolled_back = threading.Event(), threading.Event()

    def insert_then_roll_back():
        try:
            with contextlib.suppress(RuntimeError), transaction.atomic():
                Producer.objects.create(**payload["data"]["producer"])
                inserted.set()
                rolled_back.wait(timeout=30)
                raise RuntimeError("roll back")
        finally:
            connection.close()

    def process(event_id):
        try:
            return run({**payload, "id": event_id})
        finally:
            connection.close()

    holder = threading.Thread(target=insert_then_roll_back)
    holder.start()
    try:
        assert inserted.wait(timeout=30)
        with ThreadPoolExecutor(2) as pool:
            outcomes = pool.map(process, ["a1", "a2"])
            for _ in range(300):  # both wait for the producer's key
                if waiting_for_locks() == 2:
                    break
                time.sleep(0.05)
            rolled_back.set()
            assert list(outcomes) == ["processed", "processed"]
    finally:
        rolled_back.set()
        holder.join(timeout=30)
    assert Producer.objects.count() == 1
    assert FileDownload.objects.count() == 2
    assert len(signal_log.of(signals.file_downloaded)) == 2


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_store_and_announce_once(client, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    threads = 12
    barrier = threading.Barrier(threads)

    def post(_):
        barrier.wait()
        try:
            return post_event(client.__class__(), payload).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(post, range(threads)))
    assert statuses == [200] * threads
    assert WebhookEvent.objects.count() == 1
    assert FileDownload.objects.count() == 1
    assert len(signal_log.of(signals.file_downloaded)) == 1
    assert len(signal_log.of(signals.event_received)) == 1


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_events_sharing_learner_and_course_do_not_conflict(signal_log):
    payloads = [sample_payload("nutror.file_downloaded") for _ in range(30)]
    barrier = threading.Barrier(10)

    def post(payload):
        from django.test import Client

        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        try:
            return post_event(Client(), payload).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(post, payloads))
    assert statuses == [200] * 30
    assert FileDownload.objects.count() == 30
    assert Learner.objects.count() == 1
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED).count() == 30


# -- abandoned attempts (ATTEMPT_TIMEOUT) ----------------------------------------------


def started(payload, seconds_ago):
    """A stored event whose attempt started ``seconds_ago`` and never finished."""
    event = store_failed(payload)
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEvent.Status.RECEIVED,
        claimed_at=timezone.now() - dt.timedelta(seconds=seconds_ago),
    )
    return event


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_takes_over_an_abandoned_attempt(client, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    started(payload, seconds_ago=301)  # ATTEMPT_TIMEOUT defaults to 300 s
    response = post_event(client, payload)
    assert response.json()["status"] == "processed"
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 2)
    assert len(signal_log.of(signals.file_downloaded)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_leaves_an_attempt_in_progress_alone(client, settings, signal_log):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "ATTEMPT_TIMEOUT": 600}
    payload = sample_payload("nutror.file_downloaded")
    started(payload, seconds_ago=301)
    response = post_event(client, payload)
    assert response.json()["status"] == "duplicate"
    assert WebhookEvent.objects.get().status == "received"
    assert signal_log.calls == []


@pytest.mark.django_db(transaction=True)
def test_the_longest_attempt_timeout_leaves_every_attempt_alone(client, settings, signal_log):
    # 1000 years, the most the setting takes: the date that long ago is one every database holds.
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "ATTEMPT_TIMEOUT": 31_536_000_000}
    payload = sample_payload("nutror.file_downloaded")
    started(payload, seconds_ago=3_000_000_000)
    assert post_event(client, payload).json()["status"] == "duplicate"
    assert processing.abandoned(5) == []
    assert signal_log.calls == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_of_concurrent_redeliveries_one_takes_over_an_abandoned_attempt(signal_log):
    payload = sample_payload("nutror.file_downloaded")
    started(payload, seconds_ago=3600)
    barrier = threading.Barrier(4)

    def redeliver(_):
        barrier.wait()
        try:
            return post_event(Client(), payload).json()["status"]
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(redeliver, range(4)))
    assert sorted(answers) == ["duplicate", "duplicate", "duplicate", "processed"]
    assert WebhookEvent.objects.get().attempts == 2
    assert len(signal_log.of(signals.event_received)) == 1


# -- ids are compared byte for byte on every database -------------------------------------
# Letter case and trailing spaces are part of an Eduzz id. MariaDB's default collation
# ignores both (and accents); its test database, as docs/installation.rst recommends,
# compares bytes.


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", ["EVT-1", "evt-1 ", "évt-1"])
def test_event_ids_differing_in_case_spaces_or_accents_are_different_events(client, other):
    for event_id in ("evt-1", other):
        response = post_event(client, sample_payload("nutror.lesson_watched") | {"id": event_id})
        assert response.json()["status"] == "processed"
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == sorted(
        ["evt-1", other]
    )


@pytest.mark.django_db(transaction=True)
def test_course_hashes_and_lesson_ids_differing_in_case_are_different_rows(client):
    for course_hash, lesson_id in [
        ("4bba1d18c0", "a1"),
        ("4BBA1D18C0", "a1"),
        ("4bba1d18c0", "A1"),
    ]:
        course = {"hash": course_hash, "title": "Curso"}
        lesson = {"id": lesson_id, "title": "Aula"}
        post_event(client, sample_payload("nutror.file_downloaded", course=course, lesson=lesson))
    assert sorted(Lesson.objects.values_list("course__hash", "external_id")) == [
        ("4BBA1D18C0", "a1"),
        ("4bba1d18c0", "A1"),
        ("4bba1d18c0", "a1"),
    ]
    assert FileDownload.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_course_that_changed_producer_is_announced_as_it_is_now_through_its_lesson(
    client, signal_log
):
    post_event(client, sample_payload("nutror.file_downloaded"))
    course = sample_payload("nutror.file_downloaded")["data"]["course"] | {"title": "Novo"}
    producer = {"email": "outra@eduzz.com", "name": "Outra"}
    post_event(client, sample_payload("nutror.file_downloaded", course=course, producer=producer))
    download = signal_log.downloads[-1]
    assert download.lesson.course.title == "Novo"
    assert download.lesson.course.producer.email == "outra@eduzz.com"


# -- the app's models on a database of their own (DATABASE_ROUTERS, see tests/routers.py) --


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_records_failure_keeps_the_event_as_failed_on_the_apps_own_database(
    own_database, signal_log, monkeypatch
):
    test_records_failure_keeps_the_event_as_failed(signal_log, monkeypatch)


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_signals_wait_for_the_commit_of_the_apps_own_database(own_database, signal_log):
    envelope = parse_envelope(encode(sample_payload("nutror.file_downloaded")))
    with contextlib.suppress(RuntimeError), transaction.atomic(using="events"):
        assert processing.receive(envelope).outcome is processing.Outcome.PENDING
        assert signal_log.calls == []
        raise RuntimeError("the host rolls its transaction back")
    assert signal_log.calls == []
    assert not WebhookEvent.objects.exists()
