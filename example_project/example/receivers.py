"""What a host project writes: react to downloads (here, log them)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.signals import event_received, file_downloaded

logger = logging.getLogger(__name__)


@receiver(file_downloaded)
def log_download(sender: Any, download: FileDownload, event: WebhookEvent, **kwargs: Any) -> None:
    logger.info(
        "Download: %s got %r of %r (event %s)",
        download.learner.email,
        download.lesson.title,
        download.course.title,
        event.event_id,
    )


@receiver(event_received)
def log_event(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
    logger.info("Eduzz event %s (%s) received", event.event_id, event.event_type)
