"""Learners' personal data under Brazil's LGPD: erasure on request, and payload retention.

A person is known by an e-mail address. Erasing one anonymises, in one
transaction, everything the app keeps about them, and deletes nothing, so
that counts (downloads per course, events per type) stay true:

* their ``Learner`` row gets an address nobody can own (``erased-<pk>@invalid``:
  RFC 2606 reserves ``.invalid``) and a blank name, and keeps its downloads; a
  ``Producer`` row with that address (a producer who is also a learner) gets
  the same address and loses its name and Eduzz id;
* the stored events are found by the database: documented events (the
  samples) whose ``data.learner``, ``data.buyer`` or ``data.producer`` holds
  the address; events of other types whose payload contains it anywhere; and
  events whose stored error contains it. In each, the person object holding
  the address (any object with that ``email``) keeps its keys but gets the
  anonymous address and every other value emptied (name, phone, ...); the
  address is replaced wherever else it appears in the payload's text and in
  the error, and their name is removed from the error.

An address is found in every letter case and Unicode normal form, on every
database: what Eduzz sent is stored as sent, and a database lowercases ASCII
only (SQLite) and compares code points, not normal forms. So the database
only narrows the rows down to those containing the address's ASCII pieces
(:func:`_ascii_pieces`), and Python decides, comparing
:func:`~eduzz_webhooks.payloads.canonical_email` forms.

The payloads carry the same anonymous address as the rows, so replaying an
erased event links it to the same anonymised learner: counts survive replays.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, F, Func, JSONField, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Lower, Trim
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from django.utils.translation import gettext

from .models import FileDownload, Learner, Producer, WebhookEvent
from .payloads import canonical_email
from .samples import SAMPLE_EVENTS

ANONYMOUS_DOMAIN = "invalid"

# Where the documented events (``samples.SAMPLE_EVENTS``) put a person's e-mail: Nutror's
# learner, MyEduzz's buyer, and the producer (who may be a learner too).
PERSON_EMAIL_PATHS = ("data__learner__email", "data__buyer__email", "data__producer__email")

# Addresses erased per transaction (and per search of the events): bounds the query size.
ERASE_GROUP_SIZE = 100

# Events scrubbed per query: their payloads are loaded, so this bounds memory.
ERASE_BATCH_SIZE = 200

# The top-level key that marks a pruned payload.
PRUNED_MARKER = "pruned"


# -- erasure -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureReport:
    """What erasing one e-mail address did. Nothing found: every count is 0."""

    email: str
    anonymous_email: str = ""
    learners: int = 0
    downloads: int = 0  # the anonymised learners' downloads, all kept
    producers: int = 0
    payloads: int = 0  # stored events whose payload or error was scrubbed

    @property
    def found(self) -> bool:
        return bool(self.learners or self.producers or self.payloads)

    def __str__(self) -> str:
        if not self.found:
            return gettext("No data for this e-mail: %(email)s") % {"email": self.email}
        return gettext(
            "%(email)s is now %(anonymous)s: %(learners)d learner(s) anonymised "
            "(%(downloads)d download(s) kept), %(producers)d producer(s) anonymised, "
            "%(payloads)d stored event(s) scrubbed."
        ) % {
            "email": self.email,
            "anonymous": self.anonymous_email,
            "learners": self.learners,
            "downloads": self.downloads,
            "producers": self.producers,
            "payloads": self.payloads,
        }


def normalize_email(email: str) -> str:
    """The address as the app stores it (trimmed, :func:`~eduzz_webhooks.payloads.canonical_email`).

    ``ValueError`` if it is not an e-mail address.
    """
    text = canonical_email(email.strip()) if isinstance(email, str) else ""
    if "@" not in text or len(text) > 254:
        raise ValueError(gettext("%(email)r is not an e-mail address.") % {"email": email})
    return text


def is_anonymous(email: str) -> bool:
    """Whether ``email`` is an address that erasure gave out (nobody's personal data)."""
    return email.lower().endswith("@" + ANONYMOUS_DOMAIN)


def erase_learner(email: str) -> ErasureReport:
    """Erase the personal data of the person with this e-mail address, in any letter case.

    Idempotent: a second call, or an address the app never saw, changes nothing
    and reports ``found == False``. Raises ``ValueError`` if ``email`` is not an
    e-mail address.
    """
    return erase_learners([email])[0]


def erase_learners(emails: Iterable[str]) -> list[ErasureReport]:
    """:func:`erase_learner` for several addresses at once.

    One report per distinct address, in the order given. Every address is
    checked before anything is written. Addresses are erased in groups of
    ``ERASE_GROUP_SIZE``, each group in one transaction with one search of the
    stored events, so erasing a hundred costs about as much as erasing one.
    """
    asked = list(dict.fromkeys(normalize_email(email) for email in emails))
    erasures = {email: _Erasure(email) for email in asked if not is_anonymous(email)}
    pending = list(erasures.values())
    for start in range(0, len(pending), ERASE_GROUP_SIZE):
        group = {erasure.email: erasure for erasure in pending[start : start + ERASE_GROUP_SIZE]}
        with transaction.atomic():
            _anonymise_learners(group)
            _anonymise_producers(group)
            _scrub_events(group)
    return [
        erasures[email].report() if email in erasures else ErasureReport(email) for email in asked
    ]


def _fresh_address() -> str:
    # Random, not derived from the e-mail: a hash of it could be matched back to the person.
    return f"erased-{uuid.uuid4().hex}@{ANONYMOUS_DOMAIN}"


@dataclass
class _Erasure:
    email: str
    # Replaced by the learner's ``erased-<pk>`` address when there is a learner.
    anonymous: str = field(default_factory=_fresh_address)
    names: set[str] = field(default_factory=set)
    learners: int = 0
    downloads: int = 0
    producers: int = 0
    payloads: int = 0

    def report(self) -> ErasureReport:
        found = self.learners or self.producers or self.payloads
        return ErasureReport(
            email=self.email,
            anonymous_email=self.anonymous if found else "",
            learners=self.learners,
            downloads=self.downloads,
            producers=self.producers,
            payloads=self.payloads,
        )


# What a database's LIKE finds in any letter case and normal form of an address, however it is
# stored (as JSON text too): its runs of ASCII characters that JSON writes as they are and that
# no other character becomes once normalised (U+212A KELVIN SIGN becomes "k", U+0130 "i" and a
# dot, U+037E ";", U+1FEF "`").
_NOT_ASCII_PIECE = re.compile(r'i\u0307|[^\x20-\x7e]|["\\;`k]')


def _ascii_pieces(email: str) -> list[str]:
    """The pieces of a normalised address that every form of it contains (at least its "@")."""
    return [piece for piece in _NOT_ASCII_PIECE.split(email) if piece]


def _may_hold(name: str, emails: Iterable[str], *, whole: bool) -> Q:
    """Rows whose lowercased text ``name`` may hold one of ``emails``; Python decides.

    ``whole``: the text is an address and nothing else, so an address that is
    all one ASCII piece is compared whole (the common case, and the fastest).
    """
    match, exact = Q(), []
    for email in emails:
        pieces = _ascii_pieces(email)
        if whole and pieces == [email]:
            exact.append(email)
        else:
            match |= Q(*(Q(**{f"{name}__contains": piece}) for piece in pieces))
    return match | Q(**{f"{name}__in": exact}) if exact else match


def _erasure_of(erasures: dict[str, _Erasure], email: str) -> _Erasure | None:
    return erasures.get(canonical_email(email.strip()))


def _anonymise_learners(erasures: dict[str, _Erasure]) -> None:
    candidates = (
        Learner.objects.select_for_update()
        .alias(privacy_email=Lower("email"))
        .filter(_may_hold("privacy_email", erasures, whole=True))
        .order_by("pk")
    )
    learners = []
    by_pk: dict[int, _Erasure] = {}
    for learner in candidates:
        erasure = _erasure_of(erasures, learner.email)
        if erasure is None:
            continue
        learners.append(learner)
        learner.email = f"erased-{learner.pk}@{ANONYMOUS_DOMAIN}"
        if not erasure.learners:
            erasure.anonymous = learner.email
        erasure.learners += 1
        erasure.names.add(learner.name)
        learner.name = ""
        by_pk[learner.pk] = erasure
    Learner.objects.bulk_update(learners, ["email", "name"])
    downloads = (
        FileDownload.objects.filter(learner__in=list(by_pk))
        .values_list("learner")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for learner_pk, count in downloads:
        by_pk[learner_pk].downloads += count


def _anonymise_producers(erasures: dict[str, _Erasure]) -> None:
    candidates = (
        Producer.objects.select_for_update()
        .alias(privacy_email=Lower("email"))
        .filter(_may_hold("privacy_email", erasures, whole=True))
        .order_by("pk")
    )
    producers = []
    for producer in candidates:
        erasure = _erasure_of(erasures, producer.email)
        if erasure is None:
            continue
        producers.append(producer)
        # The person's address, so that a replayed event finds this row again; a second row
        # (the same address in another letter case or normal form) needs its own, the column
        # being unique.
        producer.email = _fresh_address() if erasure.producers else erasure.anonymous
        erasure.producers += 1
        erasure.names.add(producer.name)
        producer.name = producer.eduzz_id = ""
    Producer.objects.bulk_update(producers, ["email", "name", "eduzz_id"])


def _scrub_events(erasures: dict[str, _Erasure]) -> None:
    emails = list(erasures)
    # The database finds the candidate events, so only theirs are loaded. Documented events:
    # JSON key lookups at the places they put a person (stray spaces too). Other event types,
    # and errors: a text search, far slower per row, so only there.
    keys = {
        f"privacy_{i}": Lower(Trim(KT(f"payload__{path}")))
        for i, path in enumerate(PERSON_EMAIL_PATHS)
    }
    match = Q()
    for name in keys:
        match |= _may_hold(name, emails, whole=True)
    match |= (~Q(event_type__in=SAMPLE_EVENTS) & _may_hold("privacy_text", emails, whole=False)) | (
        ~Q(error="") & _may_hold("privacy_error", emails, whole=False)
    )
    pks = list(
        WebhookEvent.objects.alias(
            privacy_text=Lower(Cast("payload", TextField())), privacy_error=Lower("error"), **keys
        )
        .filter(match)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    scrubber = _Scrubber(erasures)
    for start in range(0, len(pks), ERASE_BATCH_SIZE):
        events = (
            WebhookEvent.objects.select_for_update()
            .filter(pk__in=pks[start : start + ERASE_BATCH_SIZE])
            .order_by("pk")
            .only("pk", "payload", "error")
        )
        changed = [event for event in events if scrubber.scrub(event)]
        WebhookEvent.objects.bulk_update(changed, ["payload", "error"])


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


class _Scrubber:
    def __init__(self, erasures: dict[str, _Erasure]) -> None:
        self.erasures = erasures
        # Searched for in NFC text. IGNORECASE compares one character with one, so an address
        # whose lowercase is longer than its uppercase (U+0130 becomes "i" and a dot) is also
        # searched for in uppercase; each match is then checked (:meth:`_replace`).
        forms = {form for email in erasures for form in (email, _nfc(email.upper()))}
        alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        # Not inside a longer address: "ana@x.com" is not in "joana@x.com" or "ana@x.com.br".
        self.pattern = re.compile(rf"(?<![\w.+\-])(?:{alternatives})(?![\w\-]|\.\w)", re.IGNORECASE)

    def scrub(self, event: WebhookEvent) -> bool:
        """Scrub one event in place; whether it mentioned anyone being erased."""
        found: dict[str, set[str]] = {}  # e-mail -> the names seen with it in this event
        event.payload = self._value(event.payload, found)
        error = self._text(event.error, found)
        names = {
            _nfc(name.strip())
            for email in found
            for name in found[email] | self.erasures[email].names
        }
        if found:
            error = _nfc(error)  # as its names are
        for name in sorted(filter(None, names), key=len, reverse=True):
            error = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "", error, flags=re.IGNORECASE)
        event.error = error
        for email in found:
            self.erasures[email].payloads += 1
        return bool(found)

    def _text(self, text: str, found: dict[str, set[str]]) -> str:
        """``text`` with the addresses replaced, then in NFC; unchanged when it has none."""
        replaced: list[str] = []
        scrubbed = self.pattern.sub(lambda m: self._replace(m, found, replaced), _nfc(text))
        return scrubbed if replaced else text

    def _value(self, value: Any, found: dict[str, set[str]]) -> Any:
        if isinstance(value, dict):
            email = value.get("email")
            erasure = _erasure_of(self.erasures, email) if isinstance(email, str) else None
            if erasure is not None:
                name = value.get("name")
                found.setdefault(erasure.email, set()).add(name if isinstance(name, str) else "")
                return {
                    key: erasure.anonymous if key == "email" else _emptied(item)
                    for key, item in value.items()
                }
            return {key: self._value(item, found) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item, found) for item in value]
        if isinstance(value, str):
            return self._text(value, found)
        return value

    def _replace(
        self, match: re.Match[str], found: dict[str, set[str]], replaced: list[str]
    ) -> str:
        erasure = _erasure_of(self.erasures, match.group(0))
        if erasure is None:  # another address that matches case-insensitively ("ss" for "ß")
            return match.group(0)
        found.setdefault(erasure.email, set())
        replaced.append(erasure.email)
        return erasure.anonymous


def _emptied(value: Any) -> Any:
    """A person's other data, emptied but keeping its shape."""
    if isinstance(value, dict):
        return {key: _emptied(item) for key, item in value.items()}
    if isinstance(value, list):
        return []
    if isinstance(value, str):
        return ""
    return None


# -- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneReport:
    cutoff: dt.datetime
    pruned: int  # with dry_run: how many would be
    kept_unprocessed: int  # older events kept whole because they are not processed
    dry_run: bool


class PrunedPayload(Func):
    """``{"id", "event", "sentDate", "pruned": true}`` of the stored payload, built in SQL.

    The database rewrites the payloads itself, so pruning never loads them.
    """

    # SQLite, MariaDB and MySQL: JSON_EXTRACT keeps the values' JSON types (objects stay
    # objects). The JSON true differs: SQLite has JSON(); on the others TRUE alone is the
    # number 1 (MySQL), and JSON_EXTRACT of the literal is the JSON true on both.
    template = (
        "JSON_OBJECT('id', JSON_EXTRACT(%(expressions)s, '$.id'), "
        "'event', JSON_EXTRACT(%(expressions)s, '$.event'), "
        "'sentDate', JSON_EXTRACT(%(expressions)s, '$.sentDate'), "
        f"'{PRUNED_MARKER}', %(true)s)"
    )

    def __init__(self) -> None:
        super().__init__(F("payload"), output_field=JSONField(), true="JSON('true')")

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, Sequence[Any]]:
        template = (
            "JSONB_BUILD_OBJECT('id', %(expressions)s -> 'id', "
            "'event', %(expressions)s -> 'event', "
            "'sentDate', %(expressions)s -> 'sentDate', "
            f"'{PRUNED_MARKER}', TRUE)"
        )
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_mysql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, Sequence[Any]]:
        true = "JSON_EXTRACT('true', '$')"
        return super().as_sql(compiler, connection, true=true, **extra_context)


def prunable(cutoff: dt.datetime) -> QuerySet[WebhookEvent]:
    """Processed events received before ``cutoff`` whose payload is not pruned yet."""
    return WebhookEvent.objects.filter(
        ~Q(payload__has_key=PRUNED_MARKER),
        status=WebhookEvent.Status.PROCESSED,
        received_at__lt=cutoff,
    )


def prune_payloads(days: int, *, dry_run: bool = False, batch_size: int = 1000) -> PruneReport:
    """Reduce the payloads of processed events older than ``days`` to :class:`PrunedPayload`.

    Events that are not processed keep their payload: a failed or unfinished
    event needs it to be replayed. Records (downloads, learners, ...) are kept;
    the event row keeps its id, so a re-delivery is still a duplicate. Works
    in batches of ``batch_size`` events, each committed on its own.
    """
    if days < 0:
        raise ValueError(gettext("The number of days must not be negative."))
    if batch_size < 1:
        raise ValueError(gettext("The batch size must be at least 1."))
    cutoff = timezone.now() - dt.timedelta(days=days)
    kept = (
        WebhookEvent.objects.filter(received_at__lt=cutoff)
        .exclude(status=WebhookEvent.Status.PROCESSED)
        .count()
    )
    candidates = prunable(cutoff)
    if dry_run:
        return PruneReport(cutoff, candidates.count(), kept, dry_run=True)
    pruned = 0
    last_pk = 0
    while True:
        batch = list(
            candidates.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            break
        last_pk = batch[-1]
        # The conditions again: an event replayed meanwhile keeps its payload.
        pruned += candidates.filter(pk__in=batch).update(payload=PrunedPayload())
    return PruneReport(cutoff, pruned, kept, dry_run=False)
