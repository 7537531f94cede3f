"""Helpers for host projects' tests: signed deliveries of sample events."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from .conf import conf
from .events import SAMPLE_EVENTS, encode, sample_payload
from .signature import sign

__all__ = ["SAMPLE_EVENTS", "encode", "post_event", "sample_payload", "signature_headers"]


def signature_headers(body: bytes, secret: str | None = None) -> dict[str, str]:
    """Headers for ``Client.post``: the ``x-signature`` of ``body``."""
    key = secret if secret is not None else conf.SECRETS[0]
    return {"x-signature": sign(key, body)}


def post_event(
    client: Client,
    payload: Any,
    *,
    secret: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> Any:
    """POST ``payload`` (a dict, or raw bytes) to the webhook, correctly signed."""
    body = payload if isinstance(payload, bytes) else encode(payload)
    headers = {**signature_headers(body, secret), **extra.pop("headers", {})}
    return client.post(
        url or reverse("eduzz_webhooks:webhook"),
        data=body,
        content_type="application/json",
        headers=headers,
        **extra,
    )
