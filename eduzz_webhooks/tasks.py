"""Background processing with Django's Tasks framework (``PROCESS_IN_BACKGROUND``).

``django.tasks`` on Django 6; the ``django-tasks`` backport on Django 5.2.
This module is imported only in background mode, so neither is needed
otherwise.

A delivery writes no task of its own. Its one statement inserts the event
and reads whether a :func:`drain` task waits in the queue already
(:class:`~eduzz_webhooks.models.DrainRequest`); only if none does, it
enqueues one (:func:`wake`). A drain processes every stored event that no
attempt has started, oldest first, until none is left. So during a burst a
delivery costs one statement and one commit, and the queue holds at most one
waiting drain.

Why no event is left behind:

* A drain clears the request when it starts, before it looks for events;
  and it stops only after a look that began at least ``SETTLE`` seconds
  after that clear.
* A delivery that saw a drain requested saw it in the snapshot of its
  insert, so that drain clears the request later than the snapshot was
  taken. The delivery times its statement, commit included: if it took
  ``SETTLE`` seconds or more, or ran inside a transaction that commits
  later, it calls :func:`wake` after the commit instead of trusting what it
  saw. Otherwise its event was committed less than ``SETTLE`` after the
  snapshot, so before the drain's last look.
* A delivery that saw no drain requested enqueues one after its commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from typing import Any

from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone

from .conf import conf
from .models import DrainRequest, WebhookEvent

try:
    from django.tasks import task, task_backends  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 5.2: the backport
    from django_tasks import task, task_backends  # type: ignore[no-redef,assignment,unused-ignore]

logger = logging.getLogger(__name__)

# A drain requested longer ago than this and still not started was probably
# lost (a broker that dropped it): the next delivery enqueues another. A
# second drain is harmless; the two share the events.
REQUEST_EXPIRES = dt.timedelta(minutes=1)

# How long a delivery's insert may take for it to trust what it saw of the
# drain request, and so how long a drain keeps looking after it started (the
# module's docstring says why). Events in a burst reach the drain at once;
# this is only the time an idle drain waits before it stops.
SETTLE = 1.0

# A drain stops after this long and hands over to a new one, so that no single
# task outlives a backend's time limit (RQ's default is 180 seconds).
DRAIN_SECONDS = 60.0


@task(backend=conf.TASK_BACKEND)
def drain() -> dict[str, int]:
    """Process every received event that no attempt has started; count the outcomes."""
    from . import processing

    # Started: from now on a delivery must enqueue another drain, since this
    # one may have looked for its event already. Durable: the clear must be
    # committed before the first look (a caller's transaction would delay it).
    with transaction.atomic(durable=True):
        DrainRequest.objects.filter(pk=DrainRequest.PK).update(requested_at=None)
    cleared = time.monotonic()
    outcomes: Counter[str] = Counter()
    helped = False
    while True:
        claimed = processing.claim_next()
        if claimed is None:
            wait = cleared + SETTLE - time.monotonic()
            if wait <= 0:
                break
            time.sleep(wait)  # for deliveries whose insert was in flight at the clear
            continue
        event, more = claimed
        if more and not helped:
            wake()  # a backlog: one more drain, for the next free worker
            helped = True
        outcomes[processing.process(event).outcome.value] += 1
        if time.monotonic() > cleared + DRAIN_SECONDS:
            wake()  # time is up: a new drain goes on from here
            break
    return dict(outcomes)


def store(values: dict[str, Any]) -> WebhookEvent | None:
    """Insert a new event and make sure a drain will process it; usually one statement.

    Returns the event, or ``None`` if its ``event_id`` is stored already.
    """
    in_transaction = transaction.get_connection(router.db_for_write(WebhookEvent)).in_atomic_block
    started = time.monotonic()
    event, drain_waits = WebhookEvent.objects.insert_if_new_seeing_drain(
        timezone.now() - REQUEST_EXPIRES, **values
    )
    trusted = drain_waits and not in_transaction and time.monotonic() - started < SETTLE
    if event and not trusted:
        wake_on_commit()
    return event


def wake() -> None:
    """Make sure a :func:`drain` will process the events committed so far.

    Costs one read when a drain waits in the queue already. Otherwise one
    conditional ``UPDATE`` (of concurrent callers, one wins) records the
    request and the winner enqueues the drain. Call it only once the events
    are committed.
    """
    now = timezone.now()
    request = DrainRequest.objects.filter(pk=DrainRequest.PK)
    requested = list(request.values_list("requested_at", flat=True))
    if requested and requested[0] is not None and requested[0] > now - REQUEST_EXPIRES:
        return
    if not requested:
        DrainRequest.objects.bulk_create([DrainRequest(pk=DrainRequest.PK)], ignore_conflicts=True)
    free = request.filter(Q(requested_at__isnull=True) | Q(requested_at__lte=now - REQUEST_EXPIRES))
    backend = task_backends[drain.backend]
    if type(backend).__module__.startswith("django_tasks_db"):
        # Tasks kept in this database: the request and its task commit together.
        with transaction.atomic():
            if free.update(requested_at=now):
                drain.enqueue()
    elif free.update(requested_at=now):
        try:
            drain.enqueue()
        except Exception:
            # Nothing was queued: let the next delivery try again.
            request.filter(requested_at=now).update(requested_at=None)
            raise


def wake_on_commit() -> None:
    """:func:`wake` once the current transaction commits (at once outside one).

    A failure is logged, not raised: the events are stored already, and the
    next delivery, or ``eduzz_replay --pending``, gets them processed.
    """

    def robust_wake() -> None:
        try:
            wake()
        except Exception:
            logger.exception("Eduzz background processing: enqueueing a drain task failed")

    transaction.on_commit(robust_wake)
