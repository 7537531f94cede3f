"""The documented Eduzz events: their names and sample payloads."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from importlib import resources
from typing import Any

from django.utils import timezone

from .conf import conf

_SAMPLES = resources.files("eduzz_webhooks") / "samples"

# The event types Eduzz documents: one sample file each, named after it.
SAMPLE_EVENTS = tuple(
    sorted(
        path.name.removesuffix(".json").replace("_", ".", 1)
        for path in _SAMPLES.iterdir()
        if path.name.endswith(".json")
    )
)


def sample_payload(event_type: str, *, fresh_id: bool = True, **data: Any) -> dict[str, Any]:
    """The documented sample of ``event_type``, as a new dict.

    ``fresh_id`` gives it a new unique ``id`` (the samples share some ids);
    keyword arguments replace top-level keys of ``data``.
    """
    name = event_type.replace(".", "_") + ".json"
    payload: dict[str, Any] = json.loads((_SAMPLES / name).read_text("utf-8"))
    if fresh_id:
        payload["id"] = uuid.uuid4().hex
    payload["data"].update(data)
    return payload


def encode(payload: Any) -> bytes:
    """Serialise a payload the way Eduzz does (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def format_datetime(value: dt.datetime, style: str = "utc") -> str:
    """Write an aware date-time as Eduzz does: ``"utc"``, ``"utc_ms"`` or ``"naive"``.

    ``"naive"`` writes the local time of the ``NAIVE_DATETIME_TIMEZONE``
    setting, which is how the app reads it back.
    """
    if timezone.is_naive(value):
        raise ValueError("format_datetime needs an aware datetime.")
    utc = value.astimezone(dt.UTC)
    if style == "utc":  # 2023-09-25T19:04:09Z
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "utc_ms":  # 2023-08-31T18:34:23.023Z
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if style == "naive":  # 2023-09-06 17:32:14
        return value.astimezone(conf.NAIVE_DATETIME_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")
    raise ValueError(f"Unknown date-time style {style!r}; use 'utc', 'utc_ms' or 'naive'.")
