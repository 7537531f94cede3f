"""The replay window and what a rejected delivery leaves in the logs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from eduzz_webhooks.models import WebhookEvent
from eduzz_webhooks.testing import encode, post_event, sample_payload

pytestmark = pytest.mark.django_db
SECRETS = ("test-secret-0123456789abcdef", "rotated-secret-fedcba9876543210")


def sent(ago: dt.timedelta) -> str:
    return (timezone.now() - ago).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_max_event_age_is_off_by_default(eduzz_post):
    payload = sample_payload("nutror.file_downloaded")  # sent in 2024
    assert eduzz_post(payload).status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_max_event_age_refuses_older_events(client, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "MAX_EVENT_AGE": 3600}
    payload = sample_payload("nutror.file_downloaded")
    payload["sentDate"] = sent(dt.timedelta(hours=2))
    response = post_event(client, payload)
    assert response.status_code == 400
    assert "MAX_EVENT_AGE" in response.json()["detail"]
    assert not WebhookEvent.objects.exists()


def test_max_event_age_accepts_recent_events(eduzz_post, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "MAX_EVENT_AGE": 3600}
    payload = sample_payload("nutror.file_downloaded")
    payload["sentDate"] = sent(dt.timedelta(minutes=5))
    assert eduzz_post(payload).status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "The x-signature header is missing."),
        ({"x-signature": "0" * 64}, "The x-signature header does not match the body."),
    ],
)
def test_a_rejection_is_logged_without_body_or_secret(client, caplog, headers, reason):
    body = encode(sample_payload("nutror.file_downloaded", learner={"email": "x@pessoa.com"}))
    with caplog.at_level(logging.WARNING, logger="eduzz_webhooks"):
        response = client.post(
            "/eduzz/",
            body,
            content_type="application/json",
            headers=headers,
            REMOTE_ADDR="203.0.113.9",
        )
    assert response.status_code == 401
    (record,) = [r for r in caplog.records if r.name.startswith("eduzz_webhooks")]
    message = record.getMessage()
    assert reason in message
    assert f"body {len(body)} bytes" in message
    assert "203.0.113.9" in message
    assert "x@pessoa.com" not in message
    for secret in SECRETS:
        assert secret not in caplog.text
    assert not any(secret in response.content.decode() for secret in SECRETS)
