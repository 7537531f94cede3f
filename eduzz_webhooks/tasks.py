"""Background processing with Django's Tasks framework (``PROCESS_IN_BACKGROUND``).

``django.tasks`` on Django 6; the ``django-tasks`` backport on Django 5.2.
This module is imported only in background mode, so neither is needed
otherwise.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .conf import conf

try:
    from django.tasks import task, task_backends  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 5.2: the backport
    from django_tasks import task, task_backends  # type: ignore[no-redef,assignment,unused-ignore]


@task(backend=conf.TASK_BACKEND)
def process_event(event_pk: int) -> str:
    """Build an event's records and send its signals, in a task worker."""
    from . import processing
    from .models import WebhookEvent

    # Start the attempt only if nobody has (a retried task, or a replay that
    # took over a queued event): one conditional UPDATE decides.
    started = WebhookEvent.objects.filter(
        pk=event_pk, status=WebhookEvent.Status.RECEIVED, claimed_at__isnull=True
    ).update(claimed_at=timezone.now(), attempts=F("attempts") + 1)
    if not started:
        return "skipped"
    return processing.process(WebhookEvent.objects.get(pk=event_pk)).outcome.value


def enqueue(event_pk: int) -> None:
    """Queue ``process_event`` for an event being stored in the current transaction.

    A backend that keeps tasks in this database (django-tasks-db) enqueues
    inside the transaction: the event and its task commit together, in one
    commit, and neither exists without the other. Any other backend (Celery,
    RQ, ...) enqueues once the event is committed, so that a worker never
    looks for an event that is not there yet.
    """
    backend = task_backends[process_event.backend]
    if type(backend).__module__.startswith("django_tasks_db"):
        process_event.enqueue(event_pk)
    else:
        transaction.on_commit(lambda: _enqueue(event_pk))


def _enqueue(event_pk: int) -> Any:
    return process_event.enqueue(event_pk)
