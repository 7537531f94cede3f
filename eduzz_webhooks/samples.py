"""The documented Eduzz events: their names and sample payloads.

Used by ``eduzz_send_event`` and by the test helpers in ``eduzz_webhooks.testing``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from importlib import resources
from typing import Any

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


def stamp(payload: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    """Date ``payload`` at ``when``: its ``sentDate`` and its ``data.createdAt``, if it has one.

    Written in UTC, as Eduzz writes them (``sentDate`` with milliseconds).
    """
    utc = when.astimezone(dt.timezone.utc)
    payload["sentDate"] = utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = payload.get("data")
    if isinstance(data, dict) and "createdAt" in data:
        data["createdAt"] = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return payload
