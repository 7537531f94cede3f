"""Helpers for tests: signed deliveries and sample payloads.

Importing this module needs the test extra (``factory-boy``) only for the
factories in ``eduzz_webhooks.testing`` that build models; the helpers here
need nothing beyond Django.
"""

from __future__ import annotations

import copy
import json
import uuid
from importlib import resources
from typing import Any

from django.test import Client
from django.urls import reverse

from .conf import conf
from .signature import sign

SAMPLE_EVENTS = (
    "ping",
    "myeduzz.invoice_paid",
    "nutror.certificate_viewed",
    "nutror.comment_created",
    "nutror.community_viewed",
    "nutror.enrollment_created",
    "nutror.file_downloaded",
    "nutror.inactive_student",
    "nutror.learner_help",
    "nutror.lesson_rated",
    "nutror.lesson_saved",
    "nutror.lesson_started",
    "nutror.lesson_watched",
    "nutror.module_completed",
    "nutror.notation_created",
)


def sample_payload(event_type: str, *, fresh_id: bool = True, **data: Any) -> dict[str, Any]:
    """The documented sample of ``event_type``, as a new dict.

    ``fresh_id`` gives it a new unique ``id`` (the samples share some ids);
    keyword arguments replace top-level keys of ``data``.
    """
    name = event_type.replace(".", "_") + ".json"
    text = resources.files("eduzz_webhooks").joinpath("samples", name).read_text("utf-8")
    payload: dict[str, Any] = json.loads(text)
    if fresh_id:
        payload["id"] = uuid.uuid4().hex
    payload["data"] = copy.deepcopy(payload["data"])
    payload["data"].update(data)
    return payload


def encode(payload: Any) -> bytes:
    """Serialise a payload the way Eduzz does (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
