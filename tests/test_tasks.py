"""Background mode: the request stores and enqueues; a db_worker processes."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from eduzz_webhooks import signals
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.testing import post_event, sample_payload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def background(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)


def test_request_stores_and_queues_without_processing(client, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    response = post_event(client, payload)
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookEvent.Status.RECEIVED, 0)
    assert FileDownload.objects.count() == 0
    assert signal_log.calls == []
    task = DBTaskResult.objects.get()
    assert task.task_path == "eduzz_webhooks.tasks.process_event"
    assert task.args_kwargs == {"args": [event.pk], "kwargs": {}}


def test_worker_processes_and_announces_once(client, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    post_event(client, payload)
    post_event(client, payload)  # a duplicate queues nothing
    assert DBTaskResult.objects.count() == 1
    run_worker()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookEvent.Status.PROCESSED, 1)
    assert FileDownload.objects.get().event == event
    assert len(signal_log.of(signals.file_downloaded)) == 1
    assert len(signal_log.of(signals.event_received)) == 1
    run_worker()  # nothing left to do
    assert len(signal_log.of(signals.event_received)) == 1


def test_failing_receiver_is_kept_and_retried_by_replay(client, connect, signal_log):
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
    assert DBTaskResult.objects.count() == 2
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED
