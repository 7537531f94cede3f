"""Background processing with Django's Tasks framework (``PROCESS_IN_BACKGROUND``).

``django.tasks`` on Django 6, the ``django-tasks`` backport on Django 5.2; imported only in
background mode. Each stored event gets one :func:`process_event` task, written in the event's
transaction when django-tasks-db shares the events' database (an outbox), else enqueued once
the event is committed. See ``docs/reliability.md``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import router, transaction

from . import processing
from .conf import conf
from .models import WebhookEvent

try:
    from django.tasks import (  # type: ignore[import-not-found,unused-ignore]
        DEFAULT_TASK_BACKEND_ALIAS,
        task,
        task_backends,
    )
except ImportError:  # Django 5.2: the backport
    from django_tasks import (  # type: ignore[no-redef,assignment,unused-ignore]
        DEFAULT_TASK_BACKEND_ALIAS,
        task,
        task_backends,
    )

logger = logging.getLogger(__name__)


# Abandoned attempts a task takes over after its own event: enough to drain
# what a crashed worker leaves, while keeping each task short.
TAKE_OVER = 5


def _declared_on() -> str:
    """The backend the task is declared on, which validates it on import: ``TASK_BACKEND``.

    So the backend learns the task as every process starts: one with a registry of its own
    (django-tasks-celery) would otherwise discard it, in a worker, as unknown. ``TASKS`` need
    not define a ``default`` backend besides it; a ``TASK_BACKEND`` it lacks is left to the
    system checks (E005).
    """
    alias = conf.TASK_BACKEND
    return alias if alias in task_backends.settings else DEFAULT_TASK_BACKEND_ALIAS


@task(backend=_declared_on())
def process_event(event_id: str) -> str:
    """Process one stored event, unless something else took it first; return the outcome."""
    event = processing.start(event_id)
    outcome = processing.process(event).outcome if event else processing.Outcome.SKIPPED
    for abandoned_id in processing.abandoned(TAKE_OVER):
        taken = processing.claim(abandoned_id, WebhookEvent.Status.RECEIVED)
        if taken:
            processing.process(taken)
    return outcome.value


def enqueue(event: WebhookEvent) -> None:
    """Queue ``event``'s task; call it inside the transaction that stores the event."""
    task_ = process_event.using(backend=conf.TASK_BACKEND)
    if _stores_tasks_with_events(task_backends[conf.TASK_BACKEND]):
        task_.enqueue(event.event_id)
    else:
        transaction.on_commit(
            lambda: _enqueue_committed(task_, event.event_id),
            using=router.db_for_write(WebhookEvent, instance=event),
        )


def _enqueue_committed(task_: Any, event_id: str) -> None:
    try:
        task_.enqueue(event_id)
    except Exception:
        # The event is stored and answered for: it waits for eduzz_replay --pending.
        logger.exception("Eduzz event %s: enqueueing its task failed", event_id)


def _stores_tasks_with_events(backend: Any) -> bool:
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return False
    return isinstance(backend, DatabaseBackend) and router.db_for_write(
        DBTaskResult
    ) == router.db_for_write(WebhookEvent)
