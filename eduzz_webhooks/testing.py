# mypy: allow-untyped-calls
"""Helpers for host projects' tests: factories, signed deliveries, signal capture.

Requires factory-boy: install the app with its ``testing`` extra
(``pip install "django-eduzz-webhooks[testing]"``). Import it once Django is set
up, as in any test module; it does not need pytest. The pytest fixtures built
on it live in :mod:`eduzz_webhooks.pytest_plugin`.

* Model factories: :class:`FileDownloadFactory`, :class:`WebhookEventFactory`,
  :class:`LearnerFactory`, :class:`CourseFactory`, :class:`LessonFactory`,
  :class:`ProducerFactory`.
* Payloads: :func:`build_payload` of any event type, from
  :class:`FileDownloadedPayloadFactory` for ``nutror.file_downloaded`` and
  from the documented samples for the others; override any field with
  factory-boy's ``__`` syntax, drop one with :data:`OMIT`::

      build_payload("nutror.file_downloaded", data__learner__email="ana@example.com")
      build_payload("nutror.lesson_watched", data__lesson=OMIT)

* :func:`post_event` (signed POST with Django's test client),
  :func:`signed_request` (a signed ``RequestFactory`` request) and
  :func:`signature_headers`.
* :func:`immediate_on_commit`: on-commit callbacks, and with them the signals,
  run inside a test's transaction as a real commit would run them.
* :func:`capture`: a context manager that records what the app's signals send.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
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
from .samples import SAMPLE_EVENTS, encode, sample_payload
from .signature import sign

__all__ = [
    "OMIT",
    "SAMPLE_EVENTS",
    "CourseFactory",
    "FileDownloadFactory",
    "FileDownloadedPayloadFactory",
    "LearnerFactory",
    "LessonFactory",
    "ProducerFactory",
    "SignalCall",
    "SignalCapture",
    "WebhookEventFactory",
    "build_payload",
    "capture",
    "encode",
    "format_datetime",
    "immediate_on_commit",
    "new_event_id",
    "post_event",
    "sample_payload",
    "signature_headers",
    "signed_request",
]

logger = logging.getLogger(__name__)

LOCALE = "pt_BR"
FILE_DOWNLOADED = "nutror.file_downloaded"

# The three date-time forms Eduzz documents (see ``payloads.parse_datetime``).
UTC = "utc"  # 2023-09-25T19:04:09Z
UTC_MS = "utc_ms"  # 2023-08-31T18:34:23.023Z
NAIVE = "naive"  # 2023-09-06 17:32:14, in NAIVE_DATETIME_TIMEZONE


def format_datetime(value: dt.datetime, style: str = UTC) -> str:
    """Write an aware date-time as Eduzz does: ``"utc"``, ``"utc_ms"`` or ``"naive"``.

    ``"naive"`` writes the local time of the ``NAIVE_DATETIME_TIMEZONE``
    setting, which is how the app reads it back.
    """
    if timezone.is_naive(value):
        raise ValueError("format_datetime needs an aware datetime.")
    if style == UTC:
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == UTC_MS:
        utc = value.astimezone(dt.timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if style == NAIVE:
        return value.astimezone(conf.NAIVE_DATETIME_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")
    raise ValueError(f"Unknown date-time style {style!r}; use 'utc', 'utc_ms' or 'naive'.")


def new_event_id() -> str:
    """A new unique event id, shaped like Eduzz's (25 lowercase letters and digits)."""
    number = uuid.uuid4().int
    digits = []
    while number:
        number, digit = divmod(number, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(digits).rjust(25, "0")


# -- payloads --------------------------------------------------------------------------


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


#: Pass as a field's value to leave that key out of the payload.
OMIT: Any = _Omit()


class _PayloadDict(DictFactory):
    """A JSON object: keys given :data:`OMIT` are left out."""

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        kept = {key: value for key, value in kwargs.items() if value is not OMIT}
        return super()._build(model_class, *args, **kept)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return cls._build(model_class, *args, **kwargs)


def _email(first_name: str, last_name: str, n: int) -> str:
    # The sequence number keeps addresses unique, as e-mails identify people.
    local = slugify(f"{first_name} {last_name}").replace("-", ".")
    return f"{local}{n}@example.com"


class _PersonData(_PayloadDict):
    """``{"email", "name"}`` of a learner or a producer.

    The producer's optional ``eduzzId`` is left out, as in Eduzz's sample:
    add it with ``data__producer__eduzzId="..."``.
    """

    class Params:
        first_name = Faker("first_name", locale=LOCALE)
        last_name = Faker("last_name", locale=LOCALE)

    email = LazyAttributeSequence(lambda o, n: _email(o.first_name, o.last_name, n))
    name = LazyAttribute(lambda o: f"{o.first_name} {o.last_name}")


class _CourseData(_PayloadDict):
    hash = Faker("sha1")
    title = Faker("catch_phrase", locale=LOCALE)


class _LessonData(_PayloadDict):
    class Params:
        subject = Faker("catch_phrase", locale=LOCALE)

    id = Sequence(lambda n: str(3_000 + n))
    title = LazyAttributeSequence(lambda o, n: f"Aula {n % 40 + 1}: {o.subject}")


class _FileDownloadedData(_PayloadDict):
    """``data`` of ``nutror.file_downloaded``.

    Parameters: ``created_at`` (an aware datetime; default: within the last
    hour) and ``date_format`` (default ``"utc"``, the sample's form; or
    ``"utc_ms"``, ``"naive"``). Trait ``courses_list=True`` sends the course
    as a one-element ``courses`` list instead of ``course``, the other
    documented form.
    """

    class Params:
        created_at = Faker(
            "date_time_between", start_date="-1h", end_date="now", tzinfo=dt.timezone.utc
        )
        date_format = UTC
        courses_list = Trait(course=OMIT, courses=List([SubFactory(_CourseData)]))

    producer = SubFactory(_PersonData)
    learner = SubFactory(_PersonData)
    course = SubFactory(_CourseData)
    lesson = SubFactory(_LessonData)
    createdAt = LazyAttribute(lambda o: format_datetime(o.created_at, o.date_format))


def _sent_date() -> str:
    return format_datetime(timezone.now(), UTC_MS)


class FileDownloadedPayloadFactory(_PayloadDict):
    """A ``nutror.file_downloaded`` payload with a new ``id``, people, course and lesson.

    Every value is new and valid (e-mails are unique); ``sentDate`` is now.
    """

    id = LazyFunction(new_event_id)
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
    """A new payload of ``event_type`` with ``overrides``, sent now.

    ``nutror.file_downloaded`` comes from :class:`FileDownloadedPayloadFactory`.
    Another type of :data:`SAMPLE_EVENTS` is its documented sample with a new
    ``id``: its people, course and dates are the sample's. Any other type gets
    a bare envelope whose ``data`` is ``{}``.

    Overrides use factory-boy's syntax: ``data__learner__email="..."`` sets a
    nested key (``data__items__0__name`` a list's element), :data:`OMIT`
    removes it, ``data={...}`` replaces it whole.
    """
    if event_type == FILE_DOWNLOADED:
        built: dict[str, Any] = FileDownloadedPayloadFactory.build(**overrides)
        return built
    if event_type in SAMPLE_EVENTS:
        payload = sample_payload(event_type)
    else:
        payload = {"id": new_event_id(), "event": event_type, "data": {}}
    payload["sentDate"] = _sent_date()
    for path, value in overrides.items():
        _override(payload, path.split("__"), value)
    return payload


# -- model factories ---------------------------------------------------------------


class ProducerFactory(DjangoModelFactory[Producer]):
    class Meta:
        model = Producer
        django_get_or_create = ["email"]

    class Params:
        first_name = Faker("first_name", locale=LOCALE)
        last_name = Faker("last_name", locale=LOCALE)

    email = LazyAttributeSequence(lambda o, n: _email(o.first_name, o.last_name, n))
    name = LazyAttribute(lambda o: f"{o.first_name} {o.last_name}")
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

    class Params:
        first_name = Faker("first_name", locale=LOCALE)
        last_name = Faker("last_name", locale=LOCALE)

    email = LazyAttributeSequence(lambda o, n: _email(o.first_name, o.last_name, n))
    name = LazyAttribute(lambda o: f"{o.first_name} {o.last_name}")


def _sent_at(o: Any) -> dt.datetime | None:
    return parse_datetime(o.payload.get("sentDate"))


class WebhookEventFactory(DjangoModelFactory[WebhookEvent]):
    """A stored event whose payload is a valid one of its ``event_type``."""

    class Meta:
        model = WebhookEvent

    event_id = LazyFunction(new_event_id)
    event_type = FILE_DOWNLOADED
    payload = LazyAttribute(lambda o: build_payload(o.event_type, id=o.event_id))
    sent_at = LazyAttribute(_sent_at)
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
        when = Faker("date_time_between", start_date="-28d", end_date="-1m", tzinfo=dt.timezone.utc)

    lesson = SubFactory(LessonFactory)
    course = SelfAttribute("lesson.course")
    producer = SelfAttribute("lesson.course.producer")
    learner = SubFactory(LearnerFactory)
    # Whole seconds, as Eduzz sends them: the event's payload holds the same instant.
    downloaded_at = LazyAttribute(lambda o: o.when.replace(microsecond=0))
    event = SubFactory(WebhookEventFactory, payload=LazyAttribute(_download_payload))


# -- signed deliveries ---------------------------------------------------------------


def signature_headers(body: bytes, secret: str | None = None) -> dict[str, str]:
    """Headers for ``Client.post``: the ``x-signature`` of ``body``."""
    key = secret if secret is not None else conf.SECRETS[0]
    return {"x-signature": sign(key, body)}


def post_event(
    client: Client,
    payload: Any,
    *,
    secret: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> Any:
    """POST ``payload`` (a dict, or raw bytes) to the webhook, correctly signed.

    Signed with ``secret``, or the first of ``EDUZZ_WEBHOOKS["SECRETS"]``.
    Inside a test's transaction (Django's ``TestCase``), wrap the call in
    :func:`immediate_on_commit`, or the signals wait for a commit that never
    comes.
    """
    body = payload if isinstance(payload, bytes) else encode(payload)
    headers = {**signature_headers(body, secret), **extra.pop("headers", {})}
    return client.post(
        url or reverse("eduzz_webhooks:webhook"),
        data=body,
        content_type="application/json",
        headers=headers,
        **extra,
    )


@contextmanager
def immediate_on_commit(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run on-commit callbacks (the signals) as if the test's transaction weren't there.

    A test in a transaction that never commits (``TestCase``, pytest-django's
    ``django_db``) never runs ``transaction.on_commit`` callbacks by itself.
    In this block, a callback registered outside any transaction opened within
    the block runs at once, as it does for a real request, which is in no
    transaction: the webhook's answer then says ``processed`` or ``failed``,
    not ``pending``. A callback registered inside such a transaction runs when
    the block ends, unless that transaction was rolled back.
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
                logger.error(
                    "Error calling %s in on_commit() (%s).", func.__qualname__, exc, exc_info=True
                )
        else:
            func()

    with (
        mock.patch.object(connection, "on_commit", on_commit),
        TestCase.captureOnCommitCallbacks(using=using, execute=True),
    ):
        yield


def signed_request(
    payload: Any,
    *,
    secret: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> WSGIRequest:
    """A signed ``POST`` of ``payload`` built with ``RequestFactory``, to call a view directly."""
    body = payload if isinstance(payload, bytes) else encode(payload)
    headers = {**signature_headers(body, secret), **extra.pop("headers", {})}
    return RequestFactory().post(
        url or reverse("eduzz_webhooks:webhook"),
        data=body,
        content_type="application/json",
        headers=headers,
        **extra,
    )


# -- signals ---------------------------------------------------------------------------


class SignalCall(NamedTuple):
    signal: Signal
    sender: Any
    kwargs: dict[str, Any]


class SignalCapture:
    """Records every send of some signals while it is entered; see :func:`capture`."""

    def __init__(self, watched: tuple[Signal, ...]) -> None:
        self.calls: list[SignalCall] = []
        self._watched = watched
        self._connected: list[tuple[Signal, Callable[..., Any]]] = []
        # Deliveries may be processed in other threads (concurrency tests).
        self._lock = threading.Lock()

    def of(self, signal: Signal) -> list[dict[str, Any]]:
        """The keyword arguments of each send of ``signal``, in order."""
        with self._lock:
            return [call.kwargs for call in self.calls if call.signal is signal]

    @property
    def events(self) -> list[WebhookEvent]:
        """The ``WebhookEvent`` of each ``event_received`` sent."""
        return [kwargs["event"] for kwargs in self.of(signals.event_received)]

    @property
    def downloads(self) -> list[FileDownload]:
        """The ``FileDownload`` of each ``file_downloaded`` sent."""
        return [kwargs["download"] for kwargs in self.of(signals.file_downloaded)]

    def connect(self, signal: Signal, receiver: Callable[..., Any]) -> None:
        """Connect ``receiver`` to ``signal`` too, until the capture ends."""
        signal.connect(receiver, weak=False)
        self._connected.append((signal, receiver))

    def _record(self, sender: Any, signal: Signal, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append(SignalCall(signal, sender, kwargs))

    def __enter__(self) -> SignalCapture:
        for signal in self._watched:
            self.connect(signal, self._record)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._connected:
            signal, receiver = self._connected.pop()
            signal.disconnect(receiver)


def capture(*watched: Signal) -> SignalCapture:
    """Record what signals send inside a ``with`` block.

    By default the app's ``file_downloaded`` and ``event_received``::

        with capture() as sent:
            ...
        assert [event.event_type for event in sent.events] == ["nutror.file_downloaded"]
        (kwargs,) = sent.of(file_downloaded)

    Its receivers (and any added with :meth:`SignalCapture.connect`) are
    disconnected on exit, even when the block raises.
    """
    return SignalCapture(watched or (signals.file_downloaded, signals.event_received))
