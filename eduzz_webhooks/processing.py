"""Store, deduplicate, build records and announce: no HTTP in here.

Every path (the view, the commands, the admin, the background task) goes through
:func:`receive` or :func:`process`: the event is stored before any processing and survives
its failures; an event's records are written in one transaction, with the event itself on
first delivery; signals follow that commit, and the event's final status follows them.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import IntegrityError, InterfaceError, OperationalError, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import signals
from .conf import conf
from .exceptions import InvalidEventData
from .models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from .payloads import Envelope, FileDownloadData, parse_file_downloaded, usable_envelope_error

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

FILE_DOWNLOADED = "nutror.file_downloaded"
PING = "ping"


class Outcome(models.TextChoices):
    """What handling an event came to; the one place these words are translated."""

    PROCESSED = "processed", _("processed")
    FAILED = "failed", _("failed")
    DUPLICATE = "duplicate", _("duplicate")
    QUEUED = "queued", _("queued")  # stored; a task worker will process it
    PRUNED = "pruned", _("pruned")  # its payload was pruned: nothing to redo
    PENDING = "pending", _("pending")  # its signals wait for the caller's commit
    SKIPPED = "skipped", _("skipped")  # another delivery, task or replay took it


@dataclass
class Result:
    event: WebhookEvent | None
    outcome: Outcome


# The database is unreachable or overloaded: nothing can be stored, so the
# caller must give up (the view answers 503 and Eduzz retries later).
UNAVAILABLE = (OperationalError, InterfaceError)


# -- the modelled event type: nutror.file_downloaded --------------------------------


def _parse(event_type: str, data: Any) -> tuple[FileDownloadData | None, str]:
    """The event's data if its type is modelled, and why it can't be used."""
    if event_type != FILE_DOWNLOADED:
        return None, ""
    try:
        return parse_file_downloaded(data), ""
    except InvalidEventData as exc:
        return None, str(exc)


def _store(event: WebhookEvent, data: FileDownloadData, new: bool) -> FileDownload:
    """Write the event's records; ``new``: it has none yet.

    A lesson already known with its course and producer (every download of a
    course but its lessons' first) is read with them in one query; otherwise
    each row is found or created on its own.
    """
    producer_values = {"name": data.producer_name} | (
        {"eduzz_id": data.producer_eduzz_id} if data.producer_eduzz_id else {}
    )
    course_values = {"title": data.course_title}
    lesson_values = {"title": data.lesson_title}
    known = Lesson.objects.select_related("course__producer").filter(
        course__hash=data.course_hash, external_id=data.lesson_id
    )[:1]
    lesson = next(iter(known), None)
    # Shared rows in a fixed order, so that concurrent events that must update
    # some of them lock them in the same order.
    if lesson and lesson.course.producer and lesson.course.producer.email == data.producer_email:
        producer = Producer.objects.bring_up_to_date(lesson.course.producer, producer_values)
        course = Course.objects.bring_up_to_date(lesson.course, course_values)
    else:  # a new lesson, or its course's producer changed
        producer = Producer.objects.ensure({"email": data.producer_email}, producer_values)
        course = Course.objects.ensure(
            {"hash": data.course_hash}, {**course_values, "producer_id": producer.pk}
        )
    if lesson:
        lesson.course = course  # as this event left it, not as the lesson was read with it
        lesson = Lesson.objects.bring_up_to_date(lesson, lesson_values)
    else:
        lesson = Lesson.objects.ensure(
            {"course": course, "external_id": data.lesson_id}, lesson_values, absent=True
        )
    learner = Learner.objects.ensure({"email": data.learner_email}, {"name": data.learner_name})
    fields = {
        "learner": learner,
        "course": course,
        "lesson": lesson,
        "producer": producer,
        "downloaded_at": data.downloaded_at,
    }
    if new:
        return FileDownload.objects.create(event=event, **fields)
    download, _created = FileDownload.objects.update_or_create(event=event, defaults=fields)
    return download


# -- entry points --------------------------------------------------------------------


def receive(envelope: Envelope, *, enqueue: Callable[[WebhookEvent], None] | None = None) -> Result:
    """Take one authentic delivery: store it if new, process it, announce it.

    With ``enqueue`` (background mode) it only stores the event and calls ``enqueue`` in the
    event's transaction. A duplicate does nothing, unless the stored event failed or its
    attempt was abandoned (``ATTEMPT_TIMEOUT``): then this delivery runs it again. A body
    that is not a usable envelope is kept as failed. A transaction the database aborted to
    break a deadlock is run once more. Raises ``UNAVAILABLE`` errors.
    """
    return _again_after_deadlock(envelope.event_id, lambda: _receive(envelope, enqueue))


def _receive(envelope: Envelope, enqueue: Callable[[WebhookEvent], None] | None) -> Result:
    if envelope.error:  # kept as failed: nothing to parse, build or queue
        enqueue, data, error = None, None, envelope.error
    else:
        data, error = (None, "") if enqueue else _parse(envelope.event_type, envelope.data)
    event = WebhookEvent(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        payload=envelope.payload,
        sent_at=envelope.sent_at,
        status=WebhookEvent.Status.FAILED if error else WebhookEvent.Status.RECEIVED,
        error=error,
        attempts=0 if enqueue else 1,
        claimed_at=None if enqueue else timezone.now(),
    )
    stored = False
    download = None
    try:
        with transaction.atomic(using=_database(event)):
            event.save(force_insert=True)
            stored = True
            if enqueue:
                enqueue(event)
            elif data is not None:
                download = _store(event, data, True)
    except UNAVAILABLE:
        raise
    except Exception as exc:
        if not stored and isinstance(exc, IntegrityError) and _is_stored(event.event_id):
            if envelope.error:  # the same unusable body again: nothing could change
                return Result(None, Outcome.DUPLICATE)
            return _redeliver(event.event_id, enqueue)
        # The records could not be written (the event went with them, in the
        # same transaction): keep the event on its own, as failed.
        logger.exception("Eduzz event %s: storing its records failed", event.event_id)
        return _store_failed(event, traceback.format_exc())
    if enqueue:
        return Result(event, Outcome.QUEUED)
    if error:
        logger.warning("Eduzz event %s stored as failed: %s", event.event_id, error)
        return Result(event, Outcome.FAILED)
    return _announce_on_commit(event, download)


def process(event: WebhookEvent) -> Result:
    """(Re)build the records of an event :func:`claim` or :func:`start` took, then announce it.

    Records are upserted, so running it again never duplicates them; a transaction the
    database aborted to break a deadlock is run once more.
    """
    if isinstance(event.payload, dict) and event.payload.get("pruned") is True:
        # Its data went under the retention policy (only processed events are
        # pruned): nothing to rebuild or announce, so it stays processed.
        WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.PROCESSED)
        event.status = WebhookEvent.Status.PROCESSED
        return Result(event, Outcome.PRUNED)
    envelope_error = usable_envelope_error(event.payload)
    if envelope_error:  # kept as it came: its stored error says what is wrong
        _finish(event, WebhookEvent.Status.FAILED, event.error or envelope_error)
        return Result(event, Outcome.FAILED)
    data, error = _parse(event.event_type, event.payload.get("data"))
    if error:
        _finish(event, WebhookEvent.Status.FAILED, error)
        return Result(event, Outcome.FAILED)

    def store() -> FileDownload | None:
        with transaction.atomic(using=_database(event)):
            return _store(event, data, False) if data is not None else None

    try:
        download = _again_after_deadlock(event.event_id, store)
    except UNAVAILABLE:
        raise
    except Exception:
        logger.exception("Eduzz event %s: storing its records failed", event.event_id)
        _finish(event, WebhookEvent.Status.FAILED, traceback.format_exc())
        return Result(event, Outcome.FAILED)
    return _announce_on_commit(event, download)


def claim(
    event_id: str,
    status: str | None = None,
    *,
    queued: bool = False,
    stale_after: dt.timedelta | None = None,
) -> WebhookEvent | None:
    """Take an event for another attempt by compare-and-set; return it, or ``None``.

    It takes an event in ``status`` (as the caller read it), by default one that failed or
    was abandoned: ``received`` with no attempt started (or it arrived) in the last
    ``stale_after`` (default ``ATTEMPT_TIMEOUT``). Of concurrent claimants one wins. The
    attempt is counted, or with ``queued`` left for a background task to :func:`start`.
    """
    now = timezone.now()
    timeout = conf.ATTEMPT_TIMEOUT if stale_after is None else stale_after
    abandoned = Q(status=WebhookEvent.Status.RECEIVED) & stale(now - timeout)
    if status is None:
        takeable = Q(status=WebhookEvent.Status.FAILED) | abandoned
    elif status == WebhookEvent.Status.RECEIVED:
        takeable = abandoned
    else:
        takeable = Q(status=status)
    claimed = WebhookEvent.objects.filter(takeable, event_id=event_id).update(
        status=WebhookEvent.Status.RECEIVED,
        claimed_at=None if queued else now,
        attempts=F("attempts") + (0 if queued else 1),
    )
    return WebhookEvent.objects.get(event_id=event_id) if claimed else None


def abandoned(limit: int) -> list[str]:
    """The ids of up to ``limit`` events whose attempt was abandoned, oldest first."""
    cutoff = timezone.now() - conf.ATTEMPT_TIMEOUT
    events = WebhookEvent.objects.filter(stale(cutoff), status=WebhookEvent.Status.RECEIVED)
    return list(events.order_by("received_at").values_list("event_id", flat=True)[:limit])


def start(event_id: str) -> WebhookEvent | None:
    """Start the attempt a background task was queued for, as :func:`claim` does.

    Returns ``None`` when something else (a task, a replay, a re-delivery) took the event.
    """
    started = WebhookEvent.objects.filter(
        event_id=event_id, status=WebhookEvent.Status.RECEIVED, claimed_at__isnull=True
    ).update(claimed_at=timezone.now(), attempts=F("attempts") + 1)
    return WebhookEvent.objects.get(event_id=event_id) if started else None


def stale(cutoff: dt.datetime) -> Q:
    """Events whose last attempt (or, if none started, whose arrival) is older than ``cutoff``."""
    return Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True, received_at__lt=cutoff)


# -- steps -----------------------------------------------------------------------------


def _database(event: WebhookEvent | None = None) -> str:
    """The database events are written to: their transactions and on-commit callbacks are there."""
    return router.db_for_write(WebhookEvent, instance=event)


def _again_after_deadlock(event_id: str, run: Callable[[], _T]) -> _T:
    """``run()``, once more if the database aborted its transaction to break a deadlock.

    InnoDB's, when events create one row at once. Not when the transaction was the caller's:
    its own work went with it.
    """
    try:
        return run()
    except OperationalError as exc:
        deadlocked = exc.args[:1] == (1213,) or getattr(exc.__cause__, "sqlstate", "") == "40P01"
        if not deadlocked or transaction.get_connection(_database()).in_atomic_block:
            raise
        logger.warning("Eduzz event %s: run again after a deadlock", event_id)
        return run()


def _is_stored(event_id: str) -> bool:
    return WebhookEvent.objects.filter(event_id=event_id).exists()


def _redeliver(event_id: str, enqueue: Callable[[WebhookEvent], None] | None) -> Result:
    if enqueue is None:
        event = claim(event_id)
        return process(event) if event else Result(None, Outcome.DUPLICATE)
    with transaction.atomic(using=_database()):
        event = claim(event_id, queued=True)
        if event:
            enqueue(event)
    return Result(event, Outcome.QUEUED if event else Outcome.DUPLICATE)


def _store_failed(event: WebhookEvent, error: str) -> Result:
    event.pk = None
    event.status = WebhookEvent.Status.FAILED
    event.error = error
    try:
        with transaction.atomic(using=_database(event)):
            event.save(force_insert=True)
    except IntegrityError:
        if _is_stored(event.event_id):  # a concurrent delivery stored it meanwhile
            return Result(None, Outcome.DUPLICATE)
        raise
    return Result(event, Outcome.FAILED)


def _announce_on_commit(event: WebhookEvent, download: FileDownload | None) -> Result:
    result = Result(event, Outcome.PENDING)

    def announce() -> None:
        responses = []
        if download:
            responses = signals.file_downloaded.send_robust(
                sender=FileDownload, download=download, event=event
            )
        responses += signals.event_received.send_robust(sender=WebhookEvent, event=event)
        errors = [(receiver, exc) for receiver, exc in responses if isinstance(exc, Exception)]
        outcome = Outcome.FAILED if errors else Outcome.PROCESSED
        _finish(event, WebhookEvent.Status(outcome.value), _describe_receiver_errors(errors))
        result.outcome = outcome

    # Outside any transaction this runs at once; inside one (say, a host that
    # calls us from its own atomic block), only after it commits.
    transaction.on_commit(announce, using=_database(event))
    return result


def _finish(event: WebhookEvent, status: str, error: str) -> None:
    event.status = status
    event.error = error
    event.processed_at = timezone.now() if status == WebhookEvent.Status.PROCESSED else None
    events = WebhookEvent.objects.filter(pk=event.pk)
    values = {"status": event.status, "error": event.error, "processed_at": event.processed_at}
    try:
        events.update(**values)
    except UNAVAILABLE:
        # The connection died after the records' commit and the signals: one
        # more try on a new connection spares the event a replay that would
        # announce it again. Inside a caller's transaction there is no retry.
        connection = transaction.get_connection(events.db)
        if connection.in_atomic_block:
            raise
        connection.close()
        events.update(**values)


def _describe_receiver_errors(errors: list[tuple[Any, Exception]]) -> str:
    # send_robust has logged each of them already (logger "django.dispatch").
    parts = []
    for receiver, exc in errors:
        name = (
            f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)}"
        )
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        parts.append(f"Receiver {name} raised:\n{detail}")
    return "\n".join(parts)
