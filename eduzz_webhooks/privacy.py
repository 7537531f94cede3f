"""Learners' personal data under Brazil's LGPD: erasure on request, and payload retention.

What erasing an address does is in docs/commands.rst (``eduzz_erase_learner``). An address is
found in every letter case and Unicode normal form, on every database: a database lowercases
ASCII only (SQLite) and compares code points, not normal forms. So the database only narrows the
rows down to those containing the address's ASCII pieces (:func:`_ascii_pieces`), and Python
decides, comparing :func:`~eduzz_webhooks.payloads.canonical_email` forms.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Func, JSONField, Q, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Lower, Trim
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from django.utils.translation import gettext

from .conf import LONGEST
from .models import FileDownload, Learner, Producer, WebhookEvent
from .payloads import canonical_email
from .samples import SAMPLE_EVENTS

ANONYMOUS_DOMAIN = "invalid"  # RFC 2606 reserves it: nobody can own an address there

# Where the documented Nutror events put a person's e-mail, and nowhere else: the learner and
# the producer (who may be a learner too). Other event types are searched as text: MyEduzz's
# invoices, as Eduzz publishes them, name a buyer, a student and an affiliate.
PERSON_EMAIL_PATHS = ("data__learner__email", "data__producer__email")
STRUCTURED_EVENTS = [name for name in SAMPLE_EVENTS if name.startswith("nutror.")]

# Addresses erased per transaction (and per search of the events): bounds the query size.
ERASE_GROUP_SIZE = 100

# Events scrubbed per query: their payloads are loaded, so this bounds memory.
ERASE_BATCH_SIZE = 200

# The top-level key that marks a pruned payload.
PRUNED_MARKER = "pruned"


# -- erasure -----------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    """What erasing one e-mail address did. Nothing found: every count is 0."""

    email: str
    anonymous_email: str = ""  # what replaced the address; "" when nothing was found
    learners: int = 0
    downloads: int = 0  # the anonymised learners' downloads, all kept
    producers: int = 0
    payloads: int = 0  # stored events whose payload or error was scrubbed

    @property
    def found(self) -> bool:
        return bool(self.anonymous_email)

    def anonymise(self) -> str:
        """The anonymous address, given out on first use."""
        if not self.anonymous_email:
            self.anonymous_email = _fresh_address()
        return self.anonymous_email

    def __str__(self) -> str:
        if not self.found:
            return gettext("No data for this e-mail: %(email)s") % vars(self)
        return gettext(
            "%(email)s is now %(anonymous_email)s: %(learners)d learner(s) anonymised "
            "(%(downloads)d download(s) kept), %(producers)d producer(s) anonymised, "
            "%(payloads)d stored event(s) scrubbed."
        ) % vars(self)


def normalize_email(email: str) -> str:
    """The address as the app stores it (trimmed, :func:`~eduzz_webhooks.payloads.canonical_email`).

    ``ValueError`` if it is not an e-mail address.
    """
    text = canonical_email(email.strip()) if isinstance(email, str) else ""
    if "@" not in text or len(text) > 254:
        raise ValueError(gettext("%(email)r is not an e-mail address.") % {"email": email})
    return text


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
    reports = {email: ErasureReport(email) for email in map(normalize_email, emails)}
    # An address that erasure gave out is nobody's personal data.
    pending = [email for email in reports if not email.endswith("@" + ANONYMOUS_DOMAIN)]
    for start in range(0, len(pending), ERASE_GROUP_SIZE):
        group = {email: reports[email] for email in pending[start : start + ERASE_GROUP_SIZE]}
        with transaction.atomic(using=router.db_for_write(Learner)):
            _scrub_events(group, _anonymise_people(group))
    return list(reports.values())


def _fresh_address() -> str:
    # Random, not derived from the e-mail: a hash of it could be matched back to the person.
    return f"erased-{uuid.uuid4().hex}@{ANONYMOUS_DOMAIN}"


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


_Person = TypeVar("_Person", Learner, Producer)


def _people(
    model: type[_Person], reports: dict[str, ErasureReport]
) -> list[tuple[_Person, ErasureReport]]:
    """The rows of ``model`` with one of the addresses, locked, each with its report."""
    rows = (
        model.objects.select_for_update()
        .alias(privacy_email=Lower("email"))
        .filter(_may_hold("privacy_email", reports, whole=True))
        .order_by("pk")
    )
    found = ((row, reports.get(canonical_email(row.email.strip()))) for row in rows)
    return [(row, report) for row, report in found if report]


def _anonymise_people(reports: dict[str, ErasureReport]) -> dict[str, set[str]]:
    """Anonymise the learner and producer rows; the names they had, by address."""
    names: dict[str, set[str]] = defaultdict(set)
    learners = _people(Learner, reports)
    for learner, report in learners:
        names[report.email].add(learner.name)
        learner.email = f"erased-{learner.pk}@{ANONYMOUS_DOMAIN}"
        learner.name = ""
        report.anonymous_email = report.anonymous_email or learner.email
        report.learners += 1
    Learner.objects.bulk_update([learner for learner, _ in learners], ["email", "name"])
    by_pk = {learner.pk: report for learner, report in learners}
    downloads = FileDownload.objects.filter(learner__in=list(by_pk))
    for learner_pk in downloads.values_list("learner", flat=True):
        by_pk[learner_pk].downloads += 1
    producers = _people(Producer, reports)
    for producer, report in producers:
        names[report.email].add(producer.name)
        # The person's address, so that a replayed event finds this row again; a second row
        # (the same address in another letter case or normal form) needs its own, the column
        # being unique.
        producer.email = _fresh_address() if report.producers else report.anonymise()
        producer.name = producer.eduzz_id = ""
        report.producers += 1
    Producer.objects.bulk_update([row for row, _ in producers], ["email", "name", "eduzz_id"])
    return names


def _scrub_events(reports: dict[str, ErasureReport], names: dict[str, set[str]]) -> None:
    # The database finds the candidate events, so only theirs are loaded. Documented Nutror
    # events: JSON key lookups at the places they put a person (stray spaces too). Other event
    # types, and errors: a text search, far slower per row, so only there.
    keys = {
        f"privacy_{i}": Lower(Trim(KT(f"payload__{path}")))
        for i, path in enumerate(PERSON_EMAIL_PATHS)
    }
    match = Q()
    for name in keys:
        match |= _may_hold(name, reports, whole=True)
    match |= (
        ~Q(event_type__in=STRUCTURED_EVENTS) & _may_hold("privacy_text", reports, whole=False)
    ) | (~Q(error="") & _may_hold("privacy_error", reports, whole=False))
    pks = list(
        WebhookEvent.objects.alias(
            privacy_text=Lower(Cast("payload", TextField())), privacy_error=Lower("error"), **keys
        )
        .filter(match)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    scrubber = _Scrubber(reports, names)
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
    def __init__(self, reports: dict[str, ErasureReport], names: dict[str, set[str]]) -> None:
        self.reports, self.names = reports, names
        # Searched for in NFC text. IGNORECASE compares one character with one, so an address
        # whose lowercase is longer than its uppercase (U+0130 becomes "i" and a dot) is also
        # searched for in uppercase; each match is then checked (:meth:`_replace`).
        forms = {form for email in reports for form in (email, _nfc(email.upper()))}
        alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        # Not inside a longer address: "ana@x.com" is not in "joana@x.com" or "ana@x.com.br".
        self.pattern = re.compile(rf"(?<![\w.+\-])(?:{alternatives})(?![\w\-]|\.\w)", re.IGNORECASE)

    def scrub(self, event: WebhookEvent) -> bool:
        """Scrub one event in place; whether it mentioned anyone being erased."""
        found: dict[str, set[str]] = {}  # e-mail -> the names seen with it in this event
        event.payload = self._value(event.payload, found)
        error = self._text(event.error, found)
        if found:
            error = _nfc(error)  # as its names are
        names = {_nfc(name.strip()) for email in found for name in found[email] | self.names[email]}
        for name in sorted(filter(None, names), key=len, reverse=True):
            error = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "", error, flags=re.IGNORECASE)
        event.error = error
        for email in found:
            self.reports[email].payloads += 1
        return bool(found)

    def _report(self, email: str) -> ErasureReport | None:
        return self.reports.get(canonical_email(email.strip()))

    def _text(self, text: str, found: dict[str, set[str]]) -> str:
        """``text`` with the addresses replaced, then in NFC; unchanged when it has none."""
        nfc = _nfc(text)
        scrubbed = self.pattern.sub(lambda match: self._replace(match, found), nfc)
        return scrubbed if scrubbed != nfc else text

    def _replace(self, match: re.Match[str], found: dict[str, set[str]]) -> str:
        report = self._report(match.group(0))
        if report is None:  # another address that matches case-insensitively ("ss" for "ß")
            return match.group(0)
        found.setdefault(report.email, set())
        return report.anonymise()

    def _value(self, value: Any, found: dict[str, set[str]]) -> Any:
        if isinstance(value, dict):
            email = value.get("email")
            report = self._report(email) if isinstance(email, str) else None
            if report is None:  # keys are text too: an address can be one
                return {
                    self._text(key, found): self._value(item, found) for key, item in value.items()
                }
            # The person: keeps its keys, gets the anonymous address and nothing else.
            name = value.get("name")
            found.setdefault(report.email, set()).add(name if isinstance(name, str) else "")
            return {
                key: report.anonymise() if key == "email" else _emptied(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._value(item, found) for item in value]
        if isinstance(value, str):
            return self._text(value, found)
        return value


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
    # Nothing was received longer ago than the longest span a setting gives: more prune nothing.
    cutoff = timezone.now() - dt.timedelta(days=min(days, LONGEST.days))
    old = WebhookEvent.objects.filter(received_at__lt=cutoff)
    kept = old.exclude(status=WebhookEvent.Status.PROCESSED).count()
    candidates = old.filter(status=WebhookEvent.Status.PROCESSED).exclude(
        payload__has_key=PRUNED_MARKER
    )
    if dry_run:
        return PruneReport(cutoff, candidates.count(), kept, dry_run=True)
    pruned = last_pk = 0
    while batch := list(
        candidates.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size]
    ):
        last_pk = batch[-1]
        # The conditions again: an event replayed meanwhile keeps its payload.
        pruned += candidates.filter(pk__in=batch).update(payload=PrunedPayload())
    return PruneReport(cutoff, pruned, kept, dry_run=False)
