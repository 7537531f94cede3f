"""Processing: the event stored with its records or alone as failed; concurrency on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eduzz_webhooks import processing, signals
from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.payloads import parse_envelope
from eduzz_webhooks.testing import encode, post_event, sample_payload


@pytest.mark.django_db(transaction=True)
def test_records_failure_keeps_the_event_as_failed(signal_log):
    # A bug after some records were written: they must all go, the event stays.
    payload = sample_payload("nutror.file_downloaded")
    envelope = parse_envelope(encode(payload))
    original = processing.HANDLERS[processing.FILE_DOWNLOADED]

    def exploding_store(event, data):
        original.store(event, data)
        raise RuntimeError("bug while storing")

    processing.HANDLERS[processing.FILE_DOWNLOADED] = processing.Handler(
        parse=original.parse, store=exploding_store, announce=original.announce
    )
    try:
        result = processing.receive(envelope)
    finally:
        processing.HANDLERS[processing.FILE_DOWNLOADED] = original
    assert result.outcome is processing.Outcome.FAILED
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert "RuntimeError: bug while storing" in event.error
    assert FileDownload.objects.count() == 0  # no half-written records
    assert Learner.objects.count() == 0
    assert signal_log.calls == []


@pytest.mark.postgres
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


@pytest.mark.postgres
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


@pytest.mark.django_db
def test_the_event_is_stored_from_the_body_text_sent_apart_from_the_sql(client):
    payload = sample_payload("nutror.file_downloaded", price=97.5)
    body = encode(payload)
    with CaptureQueriesContext(connection) as ctx:
        post_event(client, body)
    (insert,) = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith('INSERT INTO "eduzz_webhooks_webhookevent"')
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM eduzz_webhooks_webhookevent")
        (stored,) = cursor.fetchone()
    if connection.vendor == "postgresql":
        # Bound on the server ($1, ...), not quoted into the statement.
        assert payload["id"] not in insert
        assert json.loads(stored) == payload  # jsonb, whose text PostgreSQL normalises
    else:
        assert stored == body.decode()  # the very text that came
    assert WebhookEvent.objects.get().payload == payload
