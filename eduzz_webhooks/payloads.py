"""Parsing of the envelope and of each modelled event's ``data``.

Nothing authentic is refused: a body that is not a usable envelope is read
as far as it goes and carries the reason (:attr:`Envelope.error`), so that it
is kept as a failed event; event data is read leniently (unknown fields are
ignored, every documented variation is accepted).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from .conf import conf
from .exceptions import InvalidEnvelope, InvalidEventData

# Eduzz payloads nest three levels; anything far deeper is not an Eduzz event
# and would only cost recursion further down (JSON encoding, the database).
# The deepest value sits at this depth below the envelope: 32 levels as JSON
# depth counts them, the most MariaDB's JSON check accepts.
MAX_DEPTH = 31
# A body nested deeper than this (open arrays and objects at its deepest point)
# is not decoded at all: Python's decoder recurses once per level, so whether
# a deeper body decodes would depend on the caller's stack, and one body could
# be read in one place (the view) and not in another (an import).
DECODE_DEPTH = 200
# A JSON string, its escapes included: brackets inside one do not nest.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# NUL, and surrogates (only lone ones survive JSON decoding into str).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Envelope:
    """A delivery's body, read.

    ``payload`` is the parsed JSON (an object, for a usable envelope), or the
    body as text when it is not JSON. ``error`` says why the envelope can't be
    used; ``event_id`` is then the envelope's own id if it has a usable one,
    else ``"sha256:"`` and the hex SHA-256 of the body, so that the same body
    is the same event.
    """

    event_id: str
    event_type: str
    sent_at: dt.datetime | None
    payload: Any
    error: str = ""

    @property
    def data(self) -> Any:
        return self.payload.get("data") if isinstance(self.payload, dict) else None


def read_envelope(body: bytes) -> Envelope:
    """Read a raw body as an :class:`Envelope`, usable or not; never raises."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "backslashreplace")
        return _unusable(body, text, _("The body is not valid UTF-8."))
    if text.count("{") + text.count("[") > DECODE_DEPTH and nesting(text) > DECODE_DEPTH:
        return _unusable(body, text, _("The JSON is nested too deeply."))
    try:
        payload = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _unusable(body, text, _("The body is not valid JSON."))
    # Escapes are the only way to smuggle NUL or lone surrogates, which
    # PostgreSQL cannot store; the walk also bounds the nesting depth. Without
    # escapes and with fewer brackets than that depth there is nothing to do.
    sanitize = "\\u" in text
    too_deep = ""
    if sanitize or text.count("{") + text.count("[") > MAX_DEPTH:
        try:
            payload = _clean(payload, 0, sanitize=sanitize)
        except InvalidEnvelope as exc:
            too_deep = str(exc)
    event_id, event_type, error = _identity(payload)
    if too_deep or error:
        # JSON null would be stored as SQL NULL, and too deep a body can't be
        # stored as JSON: their text is kept instead.
        kept = text if too_deep or payload is None else payload
        return _unusable(body, kept, too_deep or error, event_id, event_type)
    return Envelope(event_id, event_type, parse_datetime(payload.get("sentDate")), payload)


def nesting(text: str) -> int:
    """How many arrays and objects are open at the deepest point of JSON ``text``."""
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def usable_envelope_error(payload: Any) -> str:
    """Why a stored payload is not a usable envelope; empty when it is one."""
    return _identity(payload)[2]


def _identity(payload: Any) -> tuple[Any, Any, str]:
    """The envelope's id and event as found, and why they can't be used (empty when they can).

    The id is ``None`` when it is not usable; a number is kept as its text.
    """
    if not isinstance(payload, dict):
        return None, None, _("The body must be a JSON object.")
    event_id, event_type = payload.get("id"), payload.get("event")
    if isinstance(event_id, (int, float)) and not isinstance(event_id, bool):
        event_id = str(event_id)
    for field, value in (("id", event_id), ("event", event_type)):
        if not isinstance(value, str) or not value.strip():
            error = _("The field '%(field)s' must be a non-empty string.") % {"field": field}
        elif len(value) > 255:
            error = _("The field '%(field)s' is longer than 255 characters.") % {"field": field}
        else:
            continue
        return (event_id if field == "event" else None), event_type, error
    return event_id, event_type, ""


def parse_envelope(body: bytes) -> Envelope:
    """Read a raw body as a usable :class:`Envelope`, or raise ``InvalidEnvelope``."""
    envelope = read_envelope(body)
    if envelope.error:
        raise InvalidEnvelope(envelope.error)
    return envelope


def _unusable(
    body: bytes, payload: Any, error: str, event_id: str | None = None, event_type: Any = None
) -> Envelope:
    """A failed envelope: the usable id, else the body's hash; every text made storable."""
    return Envelope(
        event_id=_clean_str(event_id) if event_id else "sha256:" + hashlib.sha256(body).hexdigest(),
        event_type=_clean_str(event_type[:255]) if isinstance(event_type, str) else "",
        sent_at=None,
        payload=_clean_str(payload) if isinstance(payload, str) else payload,
        error=error,
    )


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(literal)
    return value


# The constants NaN and Infinity, and numbers too large for a float, are not
# JSON that databases store.
_DECODER = json.JSONDecoder(parse_constant=_finite_float, parse_float=_finite_float)


def _clean(value: Any, depth: int, *, sanitize: bool) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidEnvelope(_("The JSON is nested too deeply."))
    if isinstance(value, dict):
        return {
            (_clean_str(k) if sanitize else k): _clean(v, depth + 1, sanitize=sanitize)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean(v, depth + 1, sanitize=sanitize) for v in value]
    if sanitize and isinstance(value, str):
        return _clean_str(value)
    return value


def _clean_str(value: str) -> str:
    """Replace NUL and lone surrogates, which no database text type accepts."""
    return _UNSTORABLE.sub("\ufffd", value)


# The date-times the app keeps: instants whose date lies within years 2 to
# 9998 in every time zone. No zone's offset reaches a day, historic ones
# included (the largest are the local mean times of 19th-century Manila,
# -15:56, and Metlakatla, +15:13), so these bounds are a day inside those years
# in UTC. Then whatever a page derives from a kept date, in any zone, stays
# within Python's years 1 to 9999: its local time, its day, week, month or year
# (TruncDay, a list filtered by year) and the start of the next one.
EARLIEST = dt.datetime(2, 1, 2, tzinfo=dt.UTC)
LATEST = dt.datetime(9998, 12, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)
# The years kept dates fall in, in any time zone: the days a page may be asked for.
KEPT_YEARS = range(EARLIEST.year, LATEST.year + 1)
# An offset written in a date-time: no time zone has had one over 14 hours since
# 1900, and PostgreSQL refuses those of 16 hours or more.
MAX_OFFSET = dt.timedelta(hours=14)


def kept_instant(value: dt.datetime) -> dt.datetime | None:
    """``value`` in UTC if it is a date-time the app keeps, else ``None``.

    Kept: an aware ``value`` whose offset is at most ``MAX_OFFSET`` and whose
    instant lies within ``EARLIEST``..``LATEST``.
    """
    offset = value.utcoffset()
    if offset is None or abs(offset) > MAX_OFFSET:
        return None
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        return None
    return utc if EARLIEST <= utc <= LATEST else None


def parse_datetime(value: Any) -> dt.datetime | None:
    """Parse an Eduzz date-time in any of its documented forms, as UTC.

    ``2023-09-25T19:04:09Z``, ``2023-08-31T18:34:23.023Z`` and
    ``2023-09-06 17:32:14``; a value without a zone is taken in the
    ``NAIVE_DATETIME_TIMEZONE`` setting. Returns ``None`` if it isn't one, or
    is not a date-time the app keeps (:func:`kept_instant`).
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=conf.NAIVE_DATETIME_TIMEZONE)
    return kept_instant(parsed)


# -- event data ---------------------------------------------------------------


class _Text(serializers.Field[str, str, str, Any]):
    """A name or title: a string, or absent/null for blank."""

    default_error_messages = {"invalid": gettext_lazy("Must be a string.")}

    def __init__(self) -> None:
        super().__init__(default="")

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        return (True, "") if data is None else super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data.strip()


class _Identifier(serializers.Field[str, Any, str, Any]):
    """An Eduzz identifier: a non-empty string, or a number (kept as its text)."""

    default_error_messages = {
        "invalid": gettext_lazy("Must be a string or a number."),
        "blank": gettext_lazy("Must not be blank."),
        "max_length": gettext_lazy("Must have at most {max_length} characters."),
    }

    def __init__(self, *, max_length: int = 255, **kwargs: Any) -> None:
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        text = str(data).strip()
        if not text:
            self.fail("blank")
        if len(text) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return text


def canonical_email(text: str) -> str:
    """The one form the app keeps an e-mail address in: lowercased, then in Unicode NFC.

    An address in any letter case, its accents composed (NFC) or not (NFD), is
    then one string, so one person is one row. Lowercasing comes first: the
    lowercase of an NFC string is not always NFC ("J\u030c" becomes "j\u030c",
    which NFC composes to "\u01f0").
    """
    return unicodedata.normalize("NFC", text.lower())


class _Email(_Identifier):
    """An e-mail address in its :func:`canonical_email` form, so that one person is one row."""

    default_error_messages = {"invalid_email": gettext_lazy("Must be an e-mail address.")}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=254, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid_email")
        # Normalised before the length check: lowercasing can lengthen (U+0130), so can NFC.
        text = super().to_internal_value(canonical_email(data))
        if "@" not in text:
            self.fail("invalid_email")
        return text


class _EduzzDateTime(serializers.Field[dt.datetime, Any, str, Any]):
    default_error_messages = {
        "invalid": gettext_lazy(
            "Must be a date-time such as 2023-09-25T19:04:09Z or 2023-09-06 17:32:14."
        )
    }

    def to_internal_value(self, data: Any) -> dt.datetime:
        parsed = parse_datetime(data)
        if parsed is None:
            self.fail("invalid")
        return parsed


class _Person(serializers.Serializer[Any]):
    email = _Email()
    name = _Text()


class _Producer(_Person):
    eduzzId = _Identifier(max_length=64, required=False, allow_null=True)


class _Course(serializers.Serializer[Any]):
    hash = _Identifier()
    title = _Text()


class _Lesson(serializers.Serializer[Any]):
    id = _Identifier()
    title = _Text()


class _FileDownloaded(serializers.Serializer[Any]):
    producer = _Producer()
    learner = _Person()
    course = _Course(required=False)
    courses = _Course(many=True, required=False)
    lesson = _Lesson()
    createdAt = _EduzzDateTime()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        course = attrs.get("course") or next(iter(attrs.get("courses") or []), None)
        if course is None:
            raise serializers.ValidationError(
                {"course": _("Either 'course' or a non-empty 'courses' list is required.")}
            )
        attrs["course"] = course
        return attrs


@dataclass(frozen=True)
class FileDownloadData:
    """The usable content of a ``nutror.file_downloaded`` event."""

    producer_email: str
    producer_name: str
    producer_eduzz_id: str
    learner_email: str
    learner_name: str
    course_hash: str
    course_title: str
    lesson_id: str
    lesson_title: str
    downloaded_at: dt.datetime


def parse_file_downloaded(data: Any) -> FileDownloadData:
    """Validate ``data`` of ``nutror.file_downloaded``, or raise ``InvalidEventData``.

    When the course comes as a ``courses`` list, the first one is the lesson's.
    """
    serializer = _FileDownloaded(data=data)
    if not serializer.is_valid():
        raise InvalidEventData(describe_errors(serializer.errors, "data"))
    v = serializer.validated_data
    return FileDownloadData(
        producer_email=v["producer"]["email"],
        producer_name=v["producer"]["name"],
        producer_eduzz_id=v["producer"].get("eduzzId") or "",
        learner_email=v["learner"]["email"],
        learner_name=v["learner"]["name"],
        course_hash=v["course"]["hash"],
        course_title=v["course"]["title"],
        lesson_id=v["lesson"]["id"],
        lesson_title=v["lesson"]["title"],
        downloaded_at=v["createdAt"],
    )


def describe_errors(errors: Any, path: str) -> str:
    """Flatten DRF's nested errors into ``data.learner.email: ...`` lines."""
    if isinstance(errors, dict):
        return "\n".join(
            describe_errors(value, path if key == "non_field_errors" else f"{path}.{key}")
            for key, value in errors.items()
        )
    if isinstance(errors, list) and errors and not isinstance(errors[0], str):
        return "\n".join(
            describe_errors(item, f"{path}[{i}]") for i, item in enumerate(errors) if item
        )
    messages = errors if isinstance(errors, list) else [errors]
    return f"{path}: " + " ".join(str(m) for m in messages)
