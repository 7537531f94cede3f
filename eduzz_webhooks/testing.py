# mypy: allow-untyped-calls
"""Helpers for host projects' tests (docs/testing.rst): factories, signed deliveries, signals.

Requires factory-boy (the app's ``testing`` extra). Import it once Django is set
up; it does not need pytest. The pytest fixtures built on it live in
:mod:`eduzz_webhooks.pytest_plugin`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from unittest import mock

from django.core.handlers.wsgi import WSGIRequest
from django.db import DEFAULT_DB_ALIAS, connections
from django.dispatch import Signal
from django.test import Client, RequestFactory, TestCase
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from factory.base import DictFactory
from factory.declarations import (
    LazyAttribute,
    LazyAttributeSequence,
    LazyFunction,
    List,
    SelfAttribute,
    Sequence,
    SubFactory,
    Trait,
)
from factory.django import DjangoModelFactory
from factory.faker import Faker

from . import signals
from .conf import conf
from .models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from .payloads import parse_datetime
from .samples import SAMPLE_EVENTS as SAMPLE_EVENTS
from .samples import encode as encode
from .samples import format_datetime as format_datetime
from .samples import sample_payload as sample_payload
from .signature import sign

logger = logging.getLogger(__name__)

LOCALE = "pt_BR"
FILE_DOWNLOADED = "nutror.file_downloaded"


def _new_id() -> str:
    return uuid.uuid4().hex


def _email(person: Any, n: int) -> str:
    # The sequence number keeps addresses unique, as e-mails identify people.
    return f"{slugify(person.name).replace('-', '.')}{n}@example.com"


# -- payloads --------------------------------------------------------------------------


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


#: Pass as a field's value to leave that key out of the payload.
OMIT: Any = _Omit()


class _PayloadDict(DictFactory):
    """A JSON object: keys given :data:`OMIT` are left out."""

    @classmethod
    def _adjust_kwargs(cls, **kwargs: Any) -> dict[str, Any]:
        return {key: value for key, value in kwargs.items() if value is not OMIT}


class _PersonData(_PayloadDict):
    # Without the producer's optional eduzzId, as in Eduzz's sample.
    email = LazyAttributeSequence(_email)
    name = Faker("name", locale=LOCALE)


class _CourseData(_PayloadDict):
    hash = Faker("sha1")
    title = Faker("catch_phrase", locale=LOCALE)


class _LessonData(_PayloadDict):
    id = Sequence(lambda n: str(3_000 + n))
    title = Sequence(lambda n: f"Aula {n % 40 + 1}")


class _FileDownloadedData(_PayloadDict):
    class Params:
        created_at = Faker("date_time_between", start_date="-1h", end_date="now", tzinfo=dt.UTC)
        date_format = "utc"
        courses_list = Trait(course=OMIT, courses=List([SubFactory(_CourseData)]))

    producer = SubFactory(_PersonData)
    learner = SubFactory(_PersonData)
    course = SubFactory(_CourseData)
    lesson = SubFactory(_LessonData)
    createdAt = LazyAttribute(lambda o: format_datetime(o.created_at, o.date_format))


def _sent_date() -> str:
    return format_datetime(timezone.now(), "utc_ms")


class FileDownloadedPayloadFactory(_PayloadDict):
    """A ``nutror.file_downloaded`` payload with a new ``id``, people, course and lesson."""

    id = LazyFunction(_new_id)
    event = FILE_DOWNLOADED
    data = SubFactory(_FileDownloadedData)
    sentDate = LazyFunction(_sent_date)


def _override(node: Any, path: list[str], value: Any) -> None:
    key: Any = int(path[0]) if isinstance(node, list) else path[0]
    if len(path) > 1:
        if isinstance(node, dict):
            node.setdefault(key, {})
        _override(node[key], path[1:], value)
    elif value is not OMIT:
        node[key] = value
    elif isinstance(node, list):
        del node[key]
    else:
        node.pop(key, None)


def build_payload(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A new payload of ``event_type``, sent now, with ``overrides`` in factory-boy's syntax.

    ``data__learner__email="..."`` sets a nested key (``data__items__0__name`` a
    list's element), :data:`OMIT` removes it, ``data={...}`` replaces it whole.
    """
    if event_type == FILE_DOWNLOADED:
        built: dict[str, Any] = FileDownloadedPayloadFactory.build(**overrides)
        return built
    if event_type in SAMPLE_EVENTS:
        payload = sample_payload(event_type)
    else:
        payload = {"id": _new_id(), "event": event_type, "data": {}}
    payload["sentDate"] = _sent_date()
    for path, value in overrides.items():
        _override(payload, path.split("__"), value)
    return payload


# -- model factories ---------------------------------------------------------------


class ProducerFactory(DjangoModelFactory[Producer]):
    class Meta:
        model = Producer
        django_get_or_create = ["email"]

    email = LazyAttributeSequence(_email)
    name = Faker("name", locale=LOCALE)
    eduzz_id = Sequence(lambda n: str(1_200_000 + n))


class CourseFactory(DjangoModelFactory[Course]):
    class Meta:
        model = Course

    hash = Faker("sha1")
    title = Faker("catch_phrase", locale=LOCALE)
    producer = SubFactory(ProducerFactory)


class LessonFactory(DjangoModelFactory[Lesson]):
    class Meta:
        model = Lesson

    course = SubFactory(CourseFactory)
    external_id = Sequence(lambda n: str(3_000 + n))
    title = Sequence(lambda n: f"Aula {n % 40 + 1}")


class LearnerFactory(DjangoModelFactory[Learner]):
    class Meta:
        model = Learner

    email = LazyAttributeSequence(_email)
    name = Faker("name", locale=LOCALE)


class WebhookEventFactory(DjangoModelFactory[WebhookEvent]):
    """A stored event whose payload is a valid one of its ``event_type``."""

    class Meta:
        model = WebhookEvent

    event_id = LazyFunction(_new_id)
    event_type = FILE_DOWNLOADED
    payload = LazyAttribute(lambda o: build_payload(o.event_type, id=o.event_id))
    sent_at = LazyAttribute(lambda o: parse_datetime(o.payload.get("sentDate")))
    status = WebhookEvent.Status.PROCESSED
    attempts = 1
    processed_at = LazyAttribute(
        lambda o: timezone.now() if o.status == WebhookEvent.Status.PROCESSED else None
    )


def _download_payload(event: Any) -> dict[str, Any]:
    # The event describes the very download it belongs to, so replaying it
    # rebuilds the same records.
    download = event.factory_parent
    producer, learner, lesson = download.producer, download.learner, download.lesson
    payload: dict[str, Any] = FileDownloadedPayloadFactory.build(
        id=event.event_id,
        data__producer__email=producer.email,
        data__producer__name=producer.name,
        data__producer__eduzzId=producer.eduzz_id or OMIT,
        data__learner__email=learner.email,
        data__learner__name=learner.name,
        data__course__hash=lesson.course.hash,
        data__course__title=lesson.course.title,
        data__lesson__id=lesson.external_id,
        data__lesson__title=lesson.title,
        data__created_at=download.downloaded_at,
    )
    return payload


class FileDownloadFactory(DjangoModelFactory[FileDownload]):
    """A download, its learner, lesson, course, producer and its processed event.

    Downloaded in the last four weeks unless given ``downloaded_at`` or
    ``when``: inside the admin insight's default period, in any time zone.
    """

    class Meta:
        model = FileDownload

    class Params:
        when = Faker("date_time_between", start_date="-28d", end_date="-1m", tzinfo=dt.UTC)

    lesson = SubFactory(LessonFactory)
    course = SelfAttribute("lesson.course")
    producer = SelfAttribute("lesson.course.producer")
    learner = SubFactory(LearnerFactory)
    # Whole seconds, as Eduzz sends them: the event's payload holds the same instant.
    downloaded_at = LazyAttribute(lambda o: o.when.replace(microsecond=0))
    event = SubFactory(WebhookEventFactory, payload=LazyAttribute(_download_payload))


# -- signed deliveries ---------------------------------------------------------------


def signature_headers(body: bytes, secret: str | None = None) -> dict[str, str]:
    """Headers for ``Client.post``: the ``x-signature`` of ``body``.

    Signed with ``secret``, or the first of ``SECRETS``; with no key at all (as with
    ``VERIFY_SIGNATURE`` off) there is no signature to send.
    """
    if secret is None and not conf.SECRETS:
        return {}
    key = secret if secret is not None else conf.SECRETS[0]
    return {"x-signature": sign(key, body)}


def _signed_post(
    post: Callable[..., Any], payload: Any, secret: str | None, url: str | None, **extra: Any
) -> Any:
    body = payload if isinstance(payload, bytes) else encode(payload)
    headers = {**signature_headers(body, secret), **extra.pop("headers", {})}
    url = url or reverse("eduzz_webhooks:webhook")
    return post(url, data=body, content_type="application/json", headers=headers, **extra)


def post_event(
    client: Client, payload: Any, *, secret: str | None = None, url: str | None = None, **extra: Any
) -> Any:
    """POST ``payload`` (a dict, or raw bytes) to the webhook, correctly signed.

    Signed with ``secret``, or the first of ``EDUZZ_WEBHOOKS["SECRETS"]``. Inside
    a test's transaction, wrap the call in :func:`immediate_on_commit`.
    """
    return _signed_post(client.post, payload, secret, url, **extra)


def signed_request(
    payload: Any, *, secret: str | None = None, url: str | None = None, **extra: Any
) -> WSGIRequest:
    """A signed ``POST`` of ``payload`` built with ``RequestFactory``, to call a view directly."""
    request: WSGIRequest = _signed_post(RequestFactory().post, payload, secret, url, **extra)
    return request


@contextmanager
def immediate_on_commit(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run on-commit callbacks (the signals) as if the test's transaction weren't there.

    A callback registered in this block outside any transaction opened within it
    runs at once, as for a real request; one registered inside such a
    transaction runs when the block ends, unless that transaction rolled back.
    """
    connection = connections[using]
    depth = len(connection.atomic_blocks)  # the test's own atomic blocks
    register = connection.on_commit

    def on_commit(func: Callable[[], object], robust: bool = False) -> None:
        if not connection.in_atomic_block or len(connection.atomic_blocks) > depth:
            register(func, robust)
        elif robust:
            # As Django does for a robust callback outside a transaction.
            try:
                func()
            except Exception as exc:
                name = getattr(func, "__qualname__", func)  # a partial has none
                logger.exception("Error calling %s in on_commit() (%s).", name, exc)
        else:
            func()

    with (
        mock.patch.object(connection, "on_commit", on_commit),
        TestCase.captureOnCommitCallbacks(using=using, execute=True),
    ):
        yield


# -- signals ---------------------------------------------------------------------------


class SignalCall(NamedTuple):
    signal: Signal
    sender: Any
    kwargs: dict[str, Any]


class SignalCapture:
    """What :func:`capture` records."""

    def __init__(self) -> None:
        self.calls: list[SignalCall] = []
        self._connected: list[tuple[Signal, Callable[..., Any]]] = []
        # Deliveries may be processed in other threads (concurrency tests).
        self._lock = threading.Lock()

    def of(self, signal: Signal) -> list[dict[str, Any]]:
        """The keyword arguments of each send of ``signal``, in order."""
        with self._lock:
            return [call.kwargs for call in self.calls if call.signal is signal]

    @property
    def events(self) -> list[WebhookEvent]:
        return [kwargs["event"] for kwargs in self.of(signals.event_received)]

    @property
    def downloads(self) -> list[FileDownload]:
        return [kwargs["download"] for kwargs in self.of(signals.file_downloaded)]

    def connect(self, signal: Signal, receiver: Callable[..., Any]) -> None:
        """Connect ``receiver`` to ``signal`` too, until the capture ends."""
        signal.connect(receiver, weak=False)
        self._connected.append((signal, receiver))

    def _record(self, sender: Any, signal: Signal, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append(SignalCall(signal, sender, kwargs))


@contextmanager
def capture(*watched: Signal) -> Iterator[SignalCapture]:
    """Record what ``watched`` (by default the app's two signals) send in a ``with`` block.

    Its receivers, and any added with :meth:`SignalCapture.connect`, are
    disconnected on exit, even when the block raises.
    """
    sent = SignalCapture()
    try:
        for signal in watched or (signals.file_downloaded, signals.event_received):
            sent.connect(signal, sent._record)
        yield sent
    finally:
        for signal, receiver in sent._connected:
            signal.disconnect(receiver)
