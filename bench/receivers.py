"""The load test's receivers: each signal sent leaves one row in ``SignalCount``."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.signals import event_received, file_downloaded

from .models import SignalCount


def count_download(sender: Any, download: FileDownload, event: WebhookEvent, **kwargs: Any) -> None:
    SignalCount.objects.create(signal="file_downloaded", event_id=event.event_id)


def count_event(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
    SignalCount.objects.create(signal="event_received", event_id=event.event_id)
    if settings.BENCH_RECEIVER_PAUSE:
        time.sleep(settings.BENCH_RECEIVER_PAUSE)  # a receiver that does some work


def connect() -> None:
    file_downloaded.connect(count_download, dispatch_uid="bench.count_download")
    event_received.connect(count_event, dispatch_uid="bench.count_event")
