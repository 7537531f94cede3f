"""The replay action (actions.py); the LGPD erase action is tested in test_privacy.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import messages
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks import signals
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.samples import sample_payload
from eduzz_webhooks.testing import WebhookEventFactory

pytestmark = pytest.mark.django_db

EVENTS = "admin:eduzz_webhooks_webhookevent_changelist"


def test_replay_action_needs_its_permission(viewer):
    event = WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    response = viewer.get(reverse(EVENTS))
    assert "replay" not in dict(
        response.context["cl"].model_admin.get_actions(response.wsgi_request)
    )
    response = viewer.post(reverse(EVENTS), {"action": "replay", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_replay_action_processes_and_reports(admin_client):
    payload = sample_payload("nutror.file_downloaded")
    event = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED
    )
    broken = WebhookEventFactory(
        payload={"id": "b", "event": "nutror.file_downloaded", "data": {}},
        status=WebhookEvent.Status.FAILED,
    )
    response = admin_client.post(
        reverse(EVENTS),
        {"action": "replay", "_selected_action": [event.pk, broken.pk]},
        follow=True,
    )
    assert [(m.level, str(m)) for m in response.context["messages"]] == [
        (messages.SUCCESS, "Replay of 1 event: processed."),
        (messages.ERROR, "Replay of 1 event: failed."),
    ]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert FileDownload.objects.get().event == event


def test_replay_inside_a_transaction_says_receivers_run_at_commit(admin_client):
    # A test transaction never commits: like a host project with ATOMIC_REQUESTS.
    payload = sample_payload("nutror.file_downloaded")
    event = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED
    )
    response = admin_client.post(
        reverse(EVENTS),
        {"action": "replay", "_selected_action": [event.pk]},
        follow=True,
    )
    assert [(m.level, str(m)) for m in response.context["messages"]] == [
        (messages.SUCCESS, "Replay of 1 event: pending.")
    ]


@pytest.mark.django_db(transaction=True)
def test_replay_skips_events_taken_meanwhile_and_says_so(admin_client):
    now = timezone.now()
    payload = sample_payload("nutror.file_downloaded")
    first = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED, received_at=now
    )
    second = WebhookEventFactory(
        status=WebhookEvent.Status.FAILED, received_at=now - dt.timedelta(minutes=1)
    )

    def take_second(sender, event, **kwargs):
        # While the first event is replayed, another worker claims the second one.
        if event.pk == first.pk:
            WebhookEvent.objects.filter(pk=second.pk).update(status=WebhookEvent.Status.RECEIVED)

    signals.event_received.connect(take_second, weak=False)
    try:
        response = admin_client.post(
            reverse(EVENTS),
            {"action": "replay", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )
    finally:
        signals.event_received.disconnect(take_second)
    assert [(m.level, str(m)) for m in response.context["messages"]] == [
        (messages.SUCCESS, "Replay of 1 event: processed."),
        (messages.WARNING, "Replay of 1 event: skipped."),
    ]
    second.refresh_from_db()
    assert second.attempts == 1  # untouched by this replay
