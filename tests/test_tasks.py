"""Background mode: a delivery stores its event with its task; a db_worker processes it."""

from __future__ import annotations

import datetime as dt
import importlib
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from eduzz_webhooks import processing, signals, tasks
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.testing import post_event, sample_payload
from tests.brokers import Recorder, Registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def background(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)


def queued():
    """The event id of each task in the queue, in order."""
    results = DBTaskResult.objects.filter(task_path=tasks.process_event.module_path)
    return [r.args_kwargs["args"][0] for r in results.order_by("enqueued_at")]


def statuses():
    return dict(WebhookEvent.objects.values_list("event_id", "status"))


def deliver(client, event_id=None, **data):
    payload = sample_payload("nutror.file_downloaded", **data)
    if event_id:
        payload["id"] = event_id
    return post_event(client, payload)


def test_a_delivery_stores_its_event_and_its_task_and_processes_nothing(client, signal_log):
    response = deliver(client, "e1")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.claimed_at) == ("received", 0, None)
    assert FileDownload.objects.count() == 0
    assert signal_log.calls == []
    assert queued() == ["e1"]


def test_every_delivery_queues_its_own_task_and_a_duplicate_none(client):
    for event_id in ("a", "b", "c", "a"):
        deliver(client, event_id)
    assert queued() == ["a", "b", "c"]


def test_worker_processes_every_event_and_announces_each_once(client, signal_log):
    for event_id in ("a", "b", "c"):
        deliver(client, event_id)
    run_worker()
    assert statuses() == dict.fromkeys("abc", "processed")
    assert FileDownload.objects.count() == 3
    assert sorted(e.event_id for e in signal_log.events) == ["a", "b", "c"]
    assert [kwargs["download"].event.event_id for kwargs in signal_log.of(signals.file_downloaded)]


def test_an_event_committed_while_the_worker_finishes_is_processed(client, monkeypatch):
    # The moment a worker has found its queue empty and is about to stop: an
    # event committed then has its own task, so no look can miss it.
    process = processing.process
    late = []

    def process_then_deliver(event):
        result = process(event)
        if not late:
            late.append(deliver(client, "late"))
        return result

    monkeypatch.setattr(processing, "process", process_then_deliver)
    deliver(client, "first")
    run_worker()
    assert statuses() == {"first": "processed", "late": "processed"}


def test_an_event_is_never_stored_without_its_task(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("task table unusable")

    monkeypatch.setattr(DBTaskResult.objects, "create", broken)
    response = deliver(client, "e1")
    # Stored on its own as failed, with the reason, for a replay: not as waiting for no task.
    assert response.json()["status"] == "failed"
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "task table unusable" in event.error
    assert queued() == []


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_an_event_is_never_stored_without_its_task_on_the_apps_own_database(
    own_database, client, monkeypatch, caplog
):
    test_an_event_is_never_stored_without_its_task(client, monkeypatch, caplog)


def test_a_task_whose_event_was_taken_meanwhile_does_nothing(client, signal_log):
    deliver(client, "e1")
    call_command("eduzz_replay", "--pending", "--older-than", "0", verbosity=0)
    assert len(signal_log.events) == 1
    run_worker()  # the task finds the event processed: skipped
    assert len(signal_log.events) == 1
    assert WebhookEvent.objects.get().attempts == 1
    (result,) = DBTaskResult.objects.all()
    assert result.return_value == processing.Outcome.SKIPPED.value


def test_with_a_broker_the_task_is_enqueued_after_the_commit(client, settings):
    settings.TASKS = {"default": {"BACKEND": "tests.brokers.Recorder"}}
    Recorder.in_transaction.clear()
    deliver(client, "e1")
    assert Recorder.in_transaction == [False]  # a worker can find the event at once


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_with_a_broker_the_task_is_enqueued_after_the_commit_on_the_apps_own_database(
    own_database, client, settings
):
    test_with_a_broker_the_task_is_enqueued_after_the_commit(client, settings)


def test_a_broker_that_is_down_leaves_the_event_for_replay(client, settings, caplog):
    settings.TASKS = {"default": {"BACKEND": "tests.brokers.BrokerDown"}}
    response = deliver(client, "e1")
    assert response.status_code == 200  # the event is stored
    assert response.json()["status"] == "queued"
    assert statuses() == {"e1": "received"}
    assert "e1: enqueueing its task failed" in caplog.text
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    call_command("eduzz_replay", "--pending", "--older-than", "0", verbosity=0)
    assert statuses() == {"e1": "processed"}


def test_failing_receiver_is_kept_and_retried_by_replay(client, connect):
    calls = []

    def flaky(sender, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CRM down")

    connect(signals.file_downloaded, flaky)
    deliver(client)
    run_worker()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FAILED
    call_command("eduzz_replay", "--failed", verbosity=0)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert FileDownload.objects.count() == 1


def test_redelivery_of_a_failed_event_queues_it_again(client):
    deliver(client, "e1", learner={})
    run_worker()
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error.startswith("data.learner.email")
    response = deliver(client, "e1", learner={})
    assert response.json()["status"] == "queued"
    assert queued() == ["e1", "e1"]
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED


@pytest.mark.concurrency
def test_concurrent_tasks_of_one_event_process_it_once(client, signal_log):
    deliver(client, "e1")
    outcomes = []
    barrier = threading.Barrier(4)
    in_threads(4, lambda: (barrier.wait(), outcomes.append(tasks.process_event.call("e1"))))
    assert sorted(outcomes) == ["processed", "skipped", "skipped", "skipped"]
    assert WebhookEvent.objects.get().attempts == 1
    assert len(signal_log.events) == 1


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


def test_workers_take_over_abandoned_attempts_without_a_redelivery(client, signal_log):
    deliver(client, "crashed")
    run_worker()
    # The attempt of "lost" started long ago and never finished (its worker was
    # killed); "orphan" waited as long for a task its broker lost.
    long_ago = timezone.now() - dt.timedelta(seconds=301)
    deliver(client, "lost")
    deliver(client, "orphan")
    DBTaskResult.objects.filter(args_kwargs__args=["orphan"]).delete()
    WebhookEvent.objects.filter(event_id="lost").update(claimed_at=long_ago, attempts=1)
    WebhookEvent.objects.filter(event_id="orphan").update(received_at=long_ago)
    DBTaskResult.objects.filter(args_kwargs__args=["lost"]).delete()
    deliver(client, "next")
    run_worker()
    assert statuses() == dict.fromkeys(["crashed", "lost", "orphan", "next"], "processed")
    assert sorted(e.event_id for e in signal_log.events) == ["crashed", "lost", "next", "orphan"]


def test_the_task_backend_learns_the_task_when_the_app_starts(settings):
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
        "eduzz": {"BACKEND": "tests.brokers.Registry"},
    }
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "TASK_BACKEND": "eduzz"}
    Registry.validated.clear()
    try:
        importlib.reload(tasks)  # as every process, a worker's too, imports it when it starts
        assert Registry.validated == [tasks.process_event.module_path]
    finally:
        importlib.reload(tasks)


def test_the_task_backend_may_be_the_only_one_tasks_defines(client, settings, signal_log):
    # A project whose TASKS holds nothing but the app's backend: no "default" alias.
    only_eduzz = override_settings(
        TASKS={"eduzz": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        EDUZZ_WEBHOOKS={**settings.EDUZZ_WEBHOOKS, "TASK_BACKEND": "eduzz"},
    )
    try:
        with only_eduzz:
            importlib.reload(tasks)  # as every process imports it
            deliver(client, "e1")
            call_command(
                "db_worker", "--batch", "--no-startup-delay", "--backend", "eduzz", verbosity=0
            )
            assert statuses() == {"e1": "processed"}
            assert len(signal_log.events) == 1
    finally:
        importlib.reload(tasks)
