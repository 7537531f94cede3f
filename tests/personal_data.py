"""Fixtures of personal data: one person in every place the app keeps it, and aged payloads.

For tests/test_privacy.py and the tests of eduzz_erase_learner and eduzz_prune_payloads;
loaded by tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from eduzz_webhooks import signals
from eduzz_webhooks.models import FileDownload, Learner, Producer, WebhookEvent
from eduzz_webhooks.samples import sample_payload
from eduzz_webhooks.testing import WebhookEventFactory, post_event

EMAIL = "zuleica.prado@example.com"
NAME = "Zuleica Prado Privacidade"
OTHER_EMAIL = "outra.pessoa@example.com"
OTHER_NAME = "Outra Pessoa Intocada"


@pytest.fixture
def delivered(client: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Post a signed event through the webhook; its signals run as in production."""

    def delivered(payload: dict[str, Any]) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, payload)
        assert response.status_code == 200
        return payload

    return delivered


def learner_event(event_type: str, email: str, name: str, **data: Any) -> dict[str, Any]:
    return sample_payload(event_type, learner={"email": email, "name": name}, **data)


@pytest.fixture
def person(delivered: Any) -> dict[str, Any]:
    """One person's data in every place the app keeps it, next to another learner's."""
    downloads = [
        delivered(learner_event("nutror.file_downloaded", "Zuleica.Prado@Example.com", NAME)),
        delivered(
            learner_event(
                "nutror.file_downloaded", EMAIL, NAME, lesson={"id": "77", "title": "Aula 77"}
            )
        ),
    ]

    def crm(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        raise ValueError(f"CRM refused {EMAIL.upper()} ({NAME})")

    # A receiver that fails with the person's data: its traceback is stored as the error.
    signals.event_received.connect(crm, weak=False)
    try:
        watched = delivered(learner_event("nutror.lesson_watched", f"  {EMAIL}  ", NAME))
    finally:
        signals.event_received.disconnect(crm)
    invoice = delivered(
        sample_payload("myeduzz.invoice_paid", buyer={"name": NAME, "email": EMAIL.upper()})
    )
    comment = delivered(
        learner_event("nutror.comment_created", EMAIL, NAME, text=f"Falar com {EMAIL}, obrigada")
    )
    # An undocumented event type: the person sits where no key lookup looks.
    cart = delivered(
        {
            "id": "cart-1",
            "event": "sun.cart_abandoned",
            "sentDate": "2024-03-01T10:00:00.000Z",
            "data": {
                "cartId": "c1",
                "customer": {"email": EMAIL, "name": NAME, "phone": "+55 11 90000-0000"},
                "items": [{"sku": "X", "qty": 1}],
            },
        }
    )
    others = [
        delivered(learner_event("nutror.file_downloaded", OTHER_EMAIL, OTHER_NAME)),
        delivered(learner_event("nutror.lesson_watched", OTHER_EMAIL, OTHER_NAME)),
    ]
    return {
        "downloads": downloads,
        "watched": watched,
        "invoice": invoice,
        "comment": comment,
        "cart": cart,
        "others": others,
    }


def stored(payload: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent.objects.get(event_id=payload["id"])


def snapshot() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for model in (WebhookEvent, Learner, Producer, FileDownload):
        rows += [tuple(r.values()) for r in model.objects.order_by("pk").values()]
    return rows


def age(payload: dict[str, Any], days: float) -> None:
    WebhookEvent.objects.filter(event_id=payload["id"]).update(
        received_at=timezone.now() - dt.timedelta(days=days)
    )


def pruned(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": payload["id"],
        "event": payload["event"],
        "sentDate": payload["sentDate"],
        "pruned": True,
    }


@pytest.fixture
def aged(delivered: Any) -> dict[str, Any]:
    old = [
        delivered(learner_event("nutror.file_downloaded", EMAIL, NAME)),
        delivered(sample_payload("myeduzz.invoice_paid")),
    ]
    recent = delivered(learner_event("nutror.lesson_watched", EMAIL, NAME))
    failed = delivered(learner_event("nutror.file_downloaded", EMAIL, NAME, lesson=None))
    assert stored(failed).status == WebhookEvent.Status.FAILED
    pending = sample_payload("nutror.lesson_saved")
    WebhookEventFactory(
        event_id=pending["id"],
        event_type=pending["event"],
        payload=pending,
        status=WebhookEvent.Status.RECEIVED,
    )
    for payload in [*old, failed, pending]:
        age(payload, 40)
    age(recent, 10)
    return {"old": old, "recent": recent, "failed": failed, "pending": pending}
