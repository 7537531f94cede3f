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

The payloads carry the same anonymous address as the rows, so replaying an
erased event links it to the same anonymised learner: counts survive replays.
"""

from __future__ import annotations

import datetime as dt
import re
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
    """The address as the app stores it (trimmed, lowercased); ``ValueError`` if it is not one."""
    text = email.strip().lower() if isinstance(email, str) else ""
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


def _anonymise_learners(erasures: dict[str, _Erasure]) -> None:
    learners = list(
        Learner.objects.select_for_update()
        .alias(privacy_email=Lower("email"))
        .filter(privacy_email__in=list(erasures))
        .order_by("pk")
    )
    by_pk: dict[int, _Erasure] = {}
    for learner in learners:
        erasure = erasures[learner.email.lower()]
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
    producers = list(
        Producer.objects.select_for_update()
        .alias(privacy_email=Lower("email"))
        .filter(privacy_email__in=list(erasures))
        .order_by("pk")
    )
    for producer in producers:
        erasure = erasures[producer.email.lower()]
        # The person's address, so that a replayed event finds this row again; a second row
        # (the same address in another letter case) needs its own, the column being unique.
        producer.email = _fresh_address() if erasure.producers else erasure.anonymous
        erasure.producers += 1
        erasure.names.add(producer.name)
        producer.name = producer.eduzz_id = ""
    Producer.objects.bulk_update(producers, ["email", "name", "eduzz_id"])


def _scrub_events(erasures: dict[str, _Erasure]) -> None:
    emails = list(erasures)
    # The database finds the events, so only theirs are loaded. Documented events: JSON key
    # lookups at the places they put a person (any letter case, stray spaces). Other event
    # types, and errors: a text search, far slower per row, so only there.
    keys = {
        f"privacy_{i}": Lower(Trim(KT(f"payload__{path}")))
        for i, path in enumerate(PERSON_EMAIL_PATHS)
    }
    match = Q()
    for name in keys:
        match |= Q(**{f"{name}__in": emails})
    # Lowercased here rather than icontains, which MariaDB and MySQL leave to the column's
    # collation: a case-sensitive one (as recommended there) would miss "Ana@X.com".
    text, error = Q(), Q()
    for email in emails:
        text |= Q(privacy_text__contains=email)
        error |= Q(privacy_error__contains=email)
    match |= (~Q(event_type__in=SAMPLE_EVENTS) & text) | (~Q(error="") & error)
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


class _Scrubber:
    def __init__(self, erasures: dict[str, _Erasure]) -> None:
        self.erasures = erasures
        alternatives = "|".join(
            re.escape(email) for email in sorted(erasures, key=len, reverse=True)
        )
        # Not inside a longer address: "ana@x.com" is not in "joana@x.com" or "ana@x.com.br".
        self.pattern = re.compile(rf"(?<![\w.+\-])(?:{alternatives})(?![\w\-]|\.\w)", re.IGNORECASE)

    def scrub(self, event: WebhookEvent) -> bool:
        """Scrub one event in place; whether it mentioned anyone being erased."""
        found: dict[str, set[str]] = {}  # e-mail -> the names seen with it in this event
        event.payload = self._value(event.payload, found)
        error = self.pattern.sub(lambda m: self._replace(m, found), event.error)
        names = {
            name.strip() for email in found for name in found[email] | self.erasures[email].names
        }
        for name in sorted(filter(None, names), key=len, reverse=True):
            error = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "", error, flags=re.IGNORECASE)
        event.error = error
        for email in found:
            self.erasures[email].payloads += 1
        return bool(found)

    def _value(self, value: Any, found: dict[str, set[str]]) -> Any:
        if isinstance(value, dict):
            email = value.get("email")
            erasure = self.erasures.get(email.strip().lower()) if isinstance(email, str) else None
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
            return self.pattern.sub(lambda m: self._replace(m, found), value)
        return value

    def _replace(self, match: re.Match[str], found: dict[str, set[str]]) -> str:
        text = match.group(0)
        erasure = next(
            e for e in self.erasures.values() if re.fullmatch(re.escape(e.email), text, re.I)
        )
        found.setdefault(erasure.email, set())
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
