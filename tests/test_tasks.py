"""Background mode: a delivery stores its event and wakes a drain; a db_worker drains."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from eduzz_webhooks import processing, signals, tasks
from eduzz_webhooks.models import DrainRequest, FileDownload, WebhookEvent
from eduzz_webhooks.testing import post_event, sample_payload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def background(settings, monkeypatch):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    # An idle drain's last look comes this long after it started (a second in
    # production): short, so that every worker run below doesn't wait.
    monkeypatch.setattr(tasks, "SETTLE", 0.05)


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)


def drains():
    return list(DBTaskResult.objects.filter(task_path="eduzz_webhooks.tasks.drain"))


def requested_at():
    return DrainRequest.objects.get(pk=DrainRequest.PK).requested_at


def store(event_id):
    payload = sample_payload("nutror.file_downloaded")
    payload["id"] = event_id
    values = {
        "event_id": event_id,
        "event_type": payload["event"],
        "payload": payload,
        "sent_at": None,
        "status": WebhookEvent.Status.RECEIVED,
        "error": "",
        "attempts": 0,
        "claimed_at": None,
    }
    return tasks.store(values)


def test_request_stores_and_queues_a_drain_without_processing(client, signal_log):
    response = post_event(client, sample_payload("nutror.file_downloaded"))
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.claimed_at) == ("received", 0, None)
    assert FileDownload.objects.count() == 0
    assert signal_log.calls == []
    (task,) = drains()
    assert task.args_kwargs == {"args": [], "kwargs": {}}
    assert requested_at() is not None


def test_a_burst_queues_one_drain(client):
    for _ in range(5):
        post_event(client, sample_payload("nutror.file_downloaded"))
    assert WebhookEvent.objects.count() == 5
    assert len(drains()) == 1


def test_worker_processes_every_event_and_announces_each_once(client, signal_log):
    payloads = [sample_payload("nutror.file_downloaded") for _ in range(3)]
    for payload in payloads:
        post_event(client, payload)
    post_event(client, payloads[0])  # a duplicate queues nothing
    run_worker()
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert FileDownload.objects.count() == 3
    assert len(signal_log.of(signals.file_downloaded)) == 3
    assert len(signal_log.of(signals.event_received)) == 3
    # The first drain saw a backlog and queued a helper for another worker;
    # here the one worker ran both, and the helper found nothing left.
    assert sorted(len(task.return_value) for task in drains()) == [0, 1]
    assert sum(task.return_value.get("processed", 0) for task in drains()) == 3
    assert requested_at() is None  # the drains started: the next delivery queues another
    post_event(client, sample_payload("nutror.file_downloaded"))
    assert len(drains()) == 3
    run_worker()
    assert len(signal_log.of(signals.event_received)) == 4


def test_a_delivery_covered_by_a_recent_look_asks_nothing():
    tasks.wake()  # a drain is requested, and this process just saw it
    DrainRequest.objects.update(requested_at=None)  # the drain starts
    store("covered")  # committed before that drain's last look: nothing to ask
    assert len(drains()) == 1
    assert requested_at() is None


def test_the_drains_last_look_finds_a_delivery_that_trusted_it(monkeypatch):
    # The race the last look is for: this process saw the drain requested, so
    # a delivery trusts it and asks nothing; but the drain had started, and
    # its first look found nothing.
    monkeypatch.setattr(tasks, "SETTLE", 0.5)  # long enough for this test's steps
    tasks.wake()
    claim_next = processing.claim_next
    late = []

    def first_look_misses_the_late_event():
        claimed = claim_next()
        if claimed is None and not late:
            late.append(store("late"))
        return claimed

    monkeypatch.setattr(processing, "claim_next", first_look_misses_the_late_event)
    assert tasks.drain.call() == {"processed": 1}
    assert len(drains()) == 1  # the late delivery queued nothing
    assert WebhookEvent.objects.get(event_id="late").status == "processed"


def test_once_the_cover_runs_out_a_delivery_asks_again():
    tasks.wake()
    DrainRequest.objects.update(requested_at=None)  # the drain starts...
    time.sleep(tasks.SETTLE)  # ... and its last look may be over
    store("after")
    assert len(drains()) == 2


def test_inside_a_transaction_the_cover_counts_at_the_commit():
    tasks.wake()
    with transaction.atomic():
        store("in-transaction")  # covered now, but commits later...
        DrainRequest.objects.update(requested_at=None)
        time.sleep(tasks.SETTLE)  # ... than the drain's last look
        assert len(drains()) == 1  # nothing yet: the event is not committed
    assert len(drains()) == 2


def test_what_wake_finds_inside_a_transaction_covers_nothing():
    with transaction.atomic():
        tasks.wake()  # requests a drain that a rollback undoes
        transaction.set_rollback(True)
    assert drains() == []
    store("after-rollback")
    assert len(drains()) == 1


def test_flush_forgets_the_cover(monkeypatch):
    monkeypatch.setattr(tasks, "SETTLE", 60)  # a cover that would outlast the test
    tasks.wake()
    call_command("flush", interactive=False, verbosity=0)  # as between tests
    store("after-flush")
    assert len(drains()) == 1


def test_an_expired_request_is_renewed():
    tasks.wake()
    DrainRequest.objects.update(requested_at=timezone.now() - dt.timedelta(minutes=2))
    tasks.wake()
    assert len(drains()) == 2
    tasks.wake()  # renewed: nothing more
    assert len(drains()) == 2


def test_a_backlog_calls_another_worker_and_a_long_drain_hands_over(monkeypatch):
    for n in range(3):
        store(f"backlog-{n}")
    DBTaskResult.objects.all().delete()  # as if the drain they queued had just started:
    DrainRequest.objects.update(requested_at=None)
    monkeypatch.setattr(tasks, "DRAIN_SECONDS", 0)  # time is up after the first event
    assert tasks.drain.call() == {"processed": 1}
    (helper,) = drains()  # for the two left, woken once
    assert WebhookEvent.objects.filter(status="received").count() == 2
    monkeypatch.setattr(tasks, "DRAIN_SECONDS", 60)
    run_worker()
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    helper.refresh_from_db()
    assert helper.return_value == {"processed": 2}


def test_drain_leaves_attempts_in_progress_alone():
    event = store("in-progress")
    WebhookEvent.objects.filter(pk=event.pk).update(claimed_at=timezone.now(), attempts=1)
    assert tasks.drain.call() == {}
    assert WebhookEvent.objects.get().status == "received"


def test_a_failed_enqueue_is_undone_and_logged(client, settings, caplog):
    settings.TASKS = {"default": {"BACKEND": "tests.brokers.BrokerDown"}}
    response = post_event(client, sample_payload("nutror.file_downloaded"))
    assert response.status_code == 200  # the event is stored: the next delivery retries
    assert WebhookEvent.objects.get().status == "received"
    assert requested_at() is None
    assert "enqueueing a drain task failed" in caplog.text


def test_failing_receiver_is_kept_and_retried_by_replay(client, connect):
    calls = []

    def flaky(sender, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CRM down")

    connect(signals.file_downloaded, flaky)
    post_event(client, sample_payload("nutror.file_downloaded"))
    run_worker()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FAILED
    call_command("eduzz_replay", "--failed", verbosity=0)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert FileDownload.objects.count() == 1


def test_redelivery_of_a_failed_event_queues_it_again(client):
    payload = sample_payload("nutror.file_downloaded", learner={})
    post_event(client, payload)
    run_worker()
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error.startswith("data.learner.email")
    response = post_event(client, payload)
    assert response.json()["status"] == "queued"
    assert len(drains()) == 2
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED


@pytest.mark.postgres
def test_concurrent_drains_share_a_backlog_without_taking_an_event_twice(signal_log):
    for n in range(40):
        store(f"shared-{n}")
    results = []
    in_threads(4, lambda: results.append(tasks.drain.call()))
    assert sum(r.get("processed", 0) for r in results) == 40
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert len(signal_log.of(signals.event_received)) == 40


@pytest.mark.postgres
def test_concurrent_wakes_queue_one_drain():
    DrainRequest.objects.create(pk=DrainRequest.PK, requested_at=None)
    barrier = threading.Barrier(6)
    in_threads(6, lambda: (barrier.wait(), tasks.wake()))
    assert len(drains()) == 1


def in_threads(count, work):
    """Run ``work`` in ``count`` threads at once, each on its own connection."""

    def run():
        try:
            work()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
