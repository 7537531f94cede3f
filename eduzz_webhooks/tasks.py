"""Background processing with Django's Tasks framework (``PROCESS_IN_BACKGROUND``).

``django.tasks`` on Django 6; the ``django-tasks`` backport on Django 5.2.
This module is imported only in background mode, so neither is needed
otherwise.

A delivery writes no task of its own: it inserts its event, and a
:func:`drain` task processes every stored event that no attempt has started,
oldest first, until none is left. At most one drain waits in the queue; the
:class:`~eduzz_webhooks.models.DrainRequest` row says whether one does. So
during a burst a delivery costs one statement and one commit.

Why no event is left behind:

* A drain clears the request when it starts, before it looks for events;
  and it stops only after a look that began at least ``SETTLE`` seconds
  after that clear.
* So when a statement sent at time *t* finds a drain requested (:func:`wake`
  reads the request, or its conditional ``UPDATE`` finds it taken or takes
  it), that drain clears the request after *t* and makes its last look after
  *t* + ``SETTLE``: every event committed before then is processed.
* A process remembers the latest such *t* + ``SETTLE``. A delivery whose
  insert has committed before that time is covered and does nothing more;
  any other calls :func:`wake` after its commit, which reads the request
  again (and enqueues a drain if none waits). During a burst each process
  reads the request about once a ``SETTLE``, not once per delivery.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Q
from django.db.models.signals import post_migrate
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

# How long a drain keeps looking after it started, and so how long after
# finding a drain requested a process may trust that it will see what it
# commits (the module's docstring says why). Events in a burst reach the drain
# at once; this is only the time an idle drain waits before it stops.
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


def store(values: dict[str, Any], payload_json: str | None = None) -> WebhookEvent | None:
    """Insert a new event and make sure a drain will process it; usually one statement.

    Returns the event, or ``None`` if its ``event_id`` is stored already.
    ``payload_json`` as for ``WebhookEvent.objects.insert_if_new``.
    """
    event = WebhookEvent.objects.insert_if_new(payload_json=payload_json, **values)
    if event is not None:
        wake_on_commit()
    return event


def wake() -> None:
    """Make sure a :func:`drain` will process the events committed so far.

    Costs one read when a drain waits in the queue already. Otherwise one
    conditional ``UPDATE`` (of concurrent callers, one wins) records the
    request and the winner enqueues the drain. Call it only once the events
    are committed.
    """
    asked = time.monotonic()  # before the statements that find a drain requested
    # What autocommitted statements find stays true (no rollback undoes it)
    # and is as recent as they are; inside a transaction neither is sure.
    connection = connections[router.db_for_write(DrainRequest)]
    trusted = connection.get_autocommit() and not connection.in_atomic_block
    now = timezone.now()
    request = DrainRequest.objects.filter(pk=DrainRequest.PK)
    requested = list(request.values_list("requested_at", flat=True))
    if requested and requested[0] is not None and requested[0] > now - REQUEST_EXPIRES:
        if trusted:
            _covered_from(asked)
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
    if trusted:  # requested now, by this call or (the UPDATE found it taken) by another
        _covered_from(asked)


def wake_on_commit() -> None:
    """Once the current transaction commits (at once outside one), make sure a drain will run.

    Nothing to do while this process knows that a drain's last look is still
    to come (the module's docstring says why); otherwise :func:`wake`. A
    failure is logged, not raised: the events are stored already, and the
    next delivery, or ``eduzz_replay --pending``, gets them processed.
    """
    transaction.on_commit(_after_commit, using=router.db_for_write(WebhookEvent))


def _after_commit() -> None:
    if time.monotonic() < _covered_until:
        return
    try:
        wake()
    except Exception:
        logger.exception("Eduzz background processing: enqueueing a drain task failed")


# In this process, events committed before this time (``time.monotonic()``)
# are sure to be seen by a drain's last look.
_covered_until = 0.0


def _covered_from(asked: float) -> None:
    global _covered_until
    _covered_until = max(_covered_until, asked + SETTLE)


def _forget_cover(**kwargs: Any) -> None:
    """After ``migrate`` or ``flush`` (between tests), the request this process saw may be gone."""
    global _covered_until
    _covered_until = 0.0


post_migrate.connect(_forget_cover, dispatch_uid="eduzz_webhooks.tasks.forget_cover")
