"""No stored row breaks a page or a command, whatever an authentic sender put in it.

Hypothesis draws a few hostile but correctly signed bodies (dates at, just
inside and just outside the dates the app keeps, offsets no time zone has, odd
Unicode, NUL, very long text, numeric ids, missing fields, nested junk, other
event types, bodies that are no usable envelope) and posts them to the real
endpoint. Then, in a time zone far west or far east of UTC, or one whose
historic offsets pass 15 hours, a superuser opens every admin page that shows
them: each list (searched, filtered, every link it offers followed, each choice
of its date filter), each stored object's page, the insight page (by
default, per course, per day of each download, every link it offers), the CSV
export read to its end; and every command that reads stored rows runs over
them: ``eduzz_replay`` (the stored ids, ``--failed``, ``--pending``),
``eduzz_import`` of a backup of the stored payloads, ``eduzz_erase_learner``
of each stored learner, ``eduzz_prune_payloads`` (dry run, then for real).
Nothing may answer a 5xx or raise.

Each example starts from empty tables (hypothesis reuses one test's database).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import html
import io
import json
import re
import unicodedata
import uuid
import warnings
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st

from eduzz_webhooks.models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from eduzz_webhooks.payloads import EARLIEST, LATEST
from eduzz_webhooks.samples import SAMPLE_EVENTS, sample_payload
from eduzz_webhooks.testing import post_event
from tests.conftest import EXTREME_ZONES

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # each example clears the tables, sets the zone
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

MODELS = (FileDownload, Course, Lesson, Learner, Producer, WebhookEvent)
RECORD_MODELS = (FileDownload, Lesson, Course, Learner, Producer)  # deletion order
FILE_DOWNLOADED, PING = "nutror.file_downloaded", "ping"
UTC = dt.UTC
MICROSECOND = dt.timedelta(microseconds=1)
HOUR = dt.timedelta(hours=1)


def clear() -> None:
    for model in (*RECORD_MODELS, WebhookEvent):
        model.objects.all().delete()


# -- strategies: dates -------------------------------------------------------------------

FIRST = dt.datetime.min.replace(tzinfo=UTC)
LAST = dt.datetime.max.replace(tzinfo=UTC)
# At, just inside and just outside the dates the app keeps, and the ends of the calendar.
EDGES = sorted(
    {
        FIRST,
        FIRST + dt.timedelta(days=1),
        dt.datetime(2, 1, 1, tzinfo=UTC),
        dt.datetime(2, 1, 1, tzinfo=UTC) - MICROSECOND,
        EARLIEST - MICROSECOND,
        EARLIEST,
        EARLIEST + MICROSECOND,
        LATEST - MICROSECOND,
        LATEST,
        LATEST + MICROSECOND,
        dt.datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(9999, 1, 1, tzinfo=UTC),
        LAST - dt.timedelta(days=1),
        LAST,
    }
)
INSTANTS = st.one_of(
    st.sampled_from(EDGES),
    st.sampled_from(EDGES).flatmap(
        lambda edge: st.integers(-48, 48).map(lambda hours: shift(edge, hours * HOUR))
    ),
    st.datetimes(timezones=st.just(UTC)),
)
KEPT_INSTANTS = st.one_of(
    st.sampled_from([EARLIEST, EARLIEST + MICROSECOND, LATEST - MICROSECOND, LATEST]),
    st.datetimes(
        min_value=EARLIEST.replace(tzinfo=None),
        max_value=LATEST.replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
)
MINUTE_OFFSETS = [0, 14 * 60, -14 * 60, -12 * 60, 5 * 60 + 45, 15 * 60 + 59, -16 * 60, 23 * 60 + 59]
OFFSETS = st.one_of(
    st.sampled_from(MINUTE_OFFSETS).map(lambda minutes: dt.timedelta(minutes=minutes)),
    st.integers(-86399, 86399).map(lambda seconds: dt.timedelta(seconds=seconds)),
)
KEPT_OFFSETS = st.integers(-14 * 3600, 14 * 3600).map(lambda seconds: dt.timedelta(seconds=seconds))
NAIVE_ZONE = zoneinfo.ZoneInfo("America/Sao_Paulo")  # NAIVE_DATETIME_TIMEZONE's default


def shift(instant: dt.datetime, by: dt.timedelta) -> dt.datetime:
    try:
        return instant + by
    except OverflowError:
        return instant


@st.composite
def date_texts(
    draw: st.DrawFn,
    instants: st.SearchStrategy[dt.datetime] = INSTANTS,
    offsets: st.SearchStrategy[dt.timedelta] = OFFSETS,
) -> str:
    """An instant written as Eduzz might: Z, an offset (any, even one no zone has) or naive."""
    instant = draw(instants)
    style = draw(st.sampled_from(["Z", "z", "offset", "naive", "date only"]))
    if style in ("Z", "z"):
        return instant.replace(tzinfo=None).isoformat() + style
    if style == "date only":
        return instant.date().isoformat()
    try:
        local = instant.astimezone(NAIVE_ZONE if style == "naive" else dt.timezone(draw(offsets)))
    except OverflowError:
        local = instant
    if style == "naive":
        return local.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    return local.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "auto"])))


# Dates the app keeps (at its ends too), written in every way.
KEPT_DATES = date_texts(KEPT_INSTANTS, KEPT_OFFSETS)
JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
DATES = st.one_of(
    date_texts(),
    st.sampled_from(
        [
            "",
            "yesterday",
            "0000-12-31T23:59:59Z",
            "10000-01-01T00:00:00Z",
            "2023-02-30T00:00:00Z",
            "2023-09-25T19:04:09+23:59",
            "2023-09-25T19:04:09-24:00",
            "2018-11-04 00:30:00",  # not a time in America/Sao_Paulo (a DST gap)
            "+002023-09-25T19:04:09Z",
        ]
    ),
    JUNK,
)

# -- strategies: text ----------------------------------------------------------------------

# Controls, NUL, a lone surrogate, bidirectional overrides, a BOM, combining marks,
# letters whose case mapping changes length, an emoji, HTML and spreadsheet formula starts.
ODD = (
    "\x00\x01\x1b\x7f\u0085\u200b\u200f\u202e\u2066\ufeff\ufffd\u0301\u0130\u00df"
    "\U0001f600\ud800\\\"<>&'=+-@\t\r\n "
)
CHARS = st.one_of(st.sampled_from(ODD), st.characters())
TEXTS = st.one_of(
    st.text(CHARS, max_size=30),
    st.text(CHARS, max_size=30).map(lambda text: unicodedata.normalize("NFD", text)),
    st.sampled_from(["Jos\u00e9", "Jose\u0301", "\u05e9\u05dc\u05d5\u05dd \u202eevil", "=1+2"]),
    st.builds(
        lambda unit, count: unit * count,
        st.sampled_from(["a", "\u00e9", "e\u0301", "\U0001f600", "\u202e", " "]),
        st.integers(200, 3000),
    ),
)
EMAILS = st.one_of(
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(CHARS, min_size=1, max_size=20),
        st.sampled_from(["example.com", "EXAMPLE.COM", "ex\u00e4mple.com", "x.io"]),
    ),
    st.sampled_from(
        [
            "jos\u00e9@example.com",
            "jose\u0301@example.com",
            "JOS\u00c9@EXAMPLE.COM",
            "D\u00c9BORA@EXAMPLE.COM",
            "\u0130@x.io",
            "-x@y.io",
            "=cmd|' /C calc'!A0@x.io",
            "\u202eoi.x@evil",
        ]
    ),
    st.builds(lambda n: "a" * n + "@x.io", st.integers(240, 249)),  # up to the 254 allowed
    st.builds(lambda n: "\u0130" * n + "@x.io", st.integers(110, 124)),  # twice as long lowered
)
IDENTIFIERS = st.one_of(
    st.uuids().map(lambda u: u.hex),
    st.integers(-(10**30), 10**30),
    st.text(CHARS, min_size=1, max_size=30).filter(str.strip),
    st.just("9" * 64),  # the longest eduzzId
)
LONG_IDENTIFIERS = st.one_of(IDENTIFIERS, st.just("9" * 255))  # the longest hash, lesson id
# Beyond the lengths kept: the event fails naming the field.
OVERSIZED = st.one_of(
    st.builds(lambda n: "9" * n, st.integers(256, 300)),
    st.builds(lambda n: "a" * n + "@x.io", st.integers(250, 260)),
    st.builds(lambda n: "\u0130" * n + "@x.io", st.integers(125, 130)),
)
EVENT_IDS = st.one_of(
    st.uuids().map(str), st.integers(0, 10**30), st.text(CHARS, min_size=1, max_size=40)
)

# -- strategies: bodies --------------------------------------------------------------------

# Each field of nutror.file_downloaded's data and a valid but odd value for it.
FIELDS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("producer", "email"): EMAILS,
    ("producer", "name"): TEXTS,
    ("producer", "eduzzId"): IDENTIFIERS,
    ("learner", "email"): EMAILS,
    ("learner", "name"): TEXTS,
    ("course", "hash"): LONG_IDENTIFIERS,
    ("course", "title"): TEXTS,
    ("lesson", "id"): LONG_IDENTIFIERS,
    ("lesson", "title"): TEXTS,
    ("createdAt",): KEPT_DATES,
}
ABSENT = object()


def put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    *parents, last = path
    for name in parents:
        child = target.setdefault(name, {})
        if not isinstance(child, dict):
            return
        target = child
    if value is ABSENT:
        target.pop(last, None)
    else:
        target[last] = value


@st.composite
def file_downloaded(draw: st.DrawFn) -> dict[str, Any]:
    """Every field valid but odd; a few of them (often none) broken: junk, absent, too long,
    a date beyond those kept."""
    data: dict[str, Any] = {}
    broken = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=2))
    for path, valid in FIELDS.items():
        value = draw(
            st.one_of(JUNK, st.just(ABSENT), OVERSIZED, DATES) if path in broken else valid
        )
        put(data, path, value)
    if draw(st.booleans()):
        data["courses"] = [data.pop("course", None), *draw(st.lists(JUNK, max_size=2))]
    if draw(st.booleans()):
        data[draw(st.text(max_size=8))] = draw(JUNK)  # an unknown field
    payload = {"id": draw(EVENT_IDS), "event": FILE_DOWNLOADED, "data": data}
    sent = draw(st.one_of(KEPT_DATES, DATES, st.just(ABSENT)))
    if sent is not ABSENT:
        payload["sentDate"] = sent
    return payload


@st.composite
def other_event(draw: st.DrawFn) -> dict[str, Any]:
    """A documented event of another type, or an unknown one, with its dates drawn."""
    event_type = draw(
        st.sampled_from([t for t in SAMPLE_EVENTS if t not in (FILE_DOWNLOADED, PING)])
    )
    payload = sample_payload(event_type, fresh_id=False)
    payload["id"] = draw(EVENT_IDS)
    payload["sentDate"] = draw(st.one_of(KEPT_DATES, DATES))
    if draw(st.booleans()):
        payload["event"] = draw(st.text(CHARS, min_size=1, max_size=40))
        payload["data"] = draw(JUNK)
    elif isinstance(payload["data"], dict):
        payload["data"]["createdAt"] = draw(st.one_of(KEPT_DATES, DATES))
    return payload


UNUSABLE = st.one_of(
    st.sampled_from(
        [
            b"\xff\xfe not UTF-8",
            b"not JSON",
            b"null",
            b"[1, 2, 3]",
            b'"text"',
            b'{"event": "nutror.file_downloaded"}',
            b'{"id": "", "event": "nutror.file_downloaded"}',
            b'{"id": "x", "event": 12}',
            b'{"id": "x", "event": "e", "data": ' + b"[" * 40 + b"]" * 40 + b"}",
        ]
    ),
    st.text(CHARS, max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda event: json.dumps({"event": event, "sentDate": "0001-01-01T00:00Z"}).encode(),
        st.text(CHARS, max_size=20),
    ),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["file_downloaded", "file_downloaded", "other", "unusable"]))
    if kind == "unusable":
        return draw(UNUSABLE)
    payload = draw(file_downloaded() if kind == "file_downloaded" else other_event())
    # Escaped or raw UTF-8 (a raw lone surrogate makes the body no UTF-8 at all).
    text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


# Date lookups on the lists' date fields, with values beyond the calendar: answered as
# a lookup the admin does not allow (400), an invalid filter (a redirect to ?e=1) or a
# list, never a 5xx.
DATE_LOOKUPS = st.sampled_from(
    [
        "downloaded_at__gte",
        "downloaded_at__lt",
        "downloaded_at__gt",
        "downloaded_at__lte",
        "downloaded_at",
        "downloaded_at__in",
        "downloaded_at__range",
        "downloaded_at__date",
        "downloaded_at__year",
        "downloaded_at__year__gte",
        "downloaded_at__month",
        "downloaded_at__day",
        "downloaded_at__isnull",
    ]
)
LOOKUP_VALUES = st.one_of(
    date_texts(),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1", "2", "9998", "9999", "10000", "0", "12", "31", "True", "x", ""]),
    st.lists(date_texts(), min_size=2, max_size=2).map(",".join),
)


@st.composite
def hostile_filters(draw: st.DrawFn) -> dict[str, str]:
    """A querystring of the download list: date lookups, a year, month and day, anything."""
    params = {draw(DATE_LOOKUPS): draw(LOOKUP_VALUES) for _ in range(draw(st.integers(1, 3)))}
    if draw(st.booleans()):
        for part in draw(st.sampled_from([["year"], ["year", "month"], ["year", "month", "day"]])):
            params[f"downloaded_at__{part}"] = draw(LOOKUP_VALUES)
    return params


# -- pages ---------------------------------------------------------------------------------


def url_of(model: type[Any], view: str, *args: Any) -> str:
    return reverse(f"admin:eduzz_webhooks_{model._meta.model_name}_{view}", args=args)


def page(client: Client, url: str, query: dict[str, str] | None = None) -> str:
    """The page at ``url``, which must open (200); its text.

    The query is sent as UTF-8, a lone surrogate as the bytes a browser would send.
    """
    if query:
        url += "?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    response = client.get(url)
    note(f"GET {url} -> {response.status_code}")
    assert response.status_code == 200, (url, response.status_code)
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def links(text: str, path: str) -> Iterator[dict[str, str]]:
    """The querystrings of the links ``text`` has to ``path`` (``?...`` links: this page)."""
    for href in re.findall(r'href="([^"]*)"', text):
        parts = urlsplit(html.unescape(href))
        if parts.path in ("", path) and parts.query:
            yield dict(parse_qsl(parts.query, keep_blank_values=True))


def changelists(client: Client, search: str | None) -> None:
    """Every list; searched; with its filters' counts; each link it offers, followed.

    Not followed: links to sort or page, and the status filter's, whose target
    is the same whatever is stored. The date filter's are (today, the past 7
    days...): stored rows may fall in any of them.
    """
    for model in MODELS:
        url = url_of(model, "changelist")
        if search is not None and model in SEARCHED:
            page(client, url, {"q": search})
        if model in FILTERED:
            page(client, url, {"_facets": "1"})
        offered = {tuple(sorted(query.items())) for query in links(page(client, url), url)}
        for query in offered:
            if not any(name in FIXED for name, _value in query):
                page(client, url, dict(query))


# The lists whose search joins other tables or matches exactly; those with list filters.
SEARCHED = (FileDownload, Learner, WebhookEvent)
FILTERED = (FileDownload, WebhookEvent)
FIXED = {"o", "p", "all", "_facets", "status__exact"}


def insight(client: Client) -> None:
    """The insight page by default, per course, per download's day; the links it offers.

    Of its links to the download list, those for a period without downloads
    (most days of its chart) are all alike: only the others are followed.
    """
    url = url_of(FileDownload, "insight")
    queries: list[dict[str, str]] = [{}]
    queries += [{"course": str(pk)} for pk in Course.objects.values_list("pk", flat=True)]
    instants = list(FileDownload.objects.values_list("downloaded_at", flat=True))
    days = {timezone.localdate(instant).isoformat() for instant in instants}
    queries += [{"start": day, "end": day} for day in sorted(days)]
    downloads = url_of(FileDownload, "changelist")
    offered: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for query in queries:
        for found in links(page(client, url, query), downloads):
            offered[tuple(sorted(found.items()))] = found
    for query in offered.values():
        since, until = query.get("downloaded_at__gte"), query.get("downloaded_at__lt")
        if since and until:
            start, end = dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
            if not any(start <= instant < end for instant in instants):
                continue
        page(client, downloads, query)


def export(client: Client) -> None:
    """The CSV export, read to its end: every download, once."""
    text = page(client, url_of(FileDownload, "export"))
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + FileDownload.objects.count()


def object_pages(client: Client, models: tuple[type[Any], ...] = MODELS) -> None:
    for model in models:
        for pk in model.objects.values_list("pk", flat=True):
            page(client, url_of(model, "change", pk))


# -- commands ------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def commands(tmp_path: Path) -> None:
    """Every command that reads stored rows, over every stored row."""
    ids = list(WebhookEvent.objects.values_list("event_id", flat=True))
    if ids:
        assert f"Replayed {len(ids)} event" in run("eduzz_replay", "--", *ids)
    run("eduzz_replay", "--failed")
    run("eduzz_replay", "--pending", "--older-than", "0")
    # A backup of the stored envelopes (the bodies that were JSON objects).
    payloads = WebhookEvent.objects.values_list("payload", flat=True)
    envelopes = [payload for payload in payloads if isinstance(payload, dict)]
    if envelopes:
        backup = tmp_path / f"backup-{uuid.uuid4().hex}.jsonl"
        backup.write_text("".join(json.dumps(p) + "\n" for p in envelopes), encoding="utf-8")
        with contextlib.suppress(CommandError):  # the envelopes that are not usable
            run("eduzz_import", str(backup))
    emails = list(Learner.objects.values_list("email", flat=True))
    if emails:
        run("eduzz_erase_learner", "--no-input", "--", *emails)
        assert not Learner.objects.filter(email__in=emails).exists()  # each was found, erased
    before = list(WebhookEvent.objects.values_list("payload", flat=True))
    run("eduzz_prune_payloads", "--days", "0", "--dry-run")
    assert list(WebhookEvent.objects.values_list("payload", flat=True)) == before
    run("eduzz_prune_payloads", "--days", "0")
    processed = WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED)
    assert all(payload.get("pruned") for payload in processed.values_list("payload", flat=True))


# -- the test ------------------------------------------------------------------------------


def edge_download(instant: dt.datetime) -> bytes:
    """A valid download dated ``instant`` (sent then too)."""
    text = instant.replace(tzinfo=None).isoformat() + "Z"
    person = {"email": f"{instant.year}@example.com", "name": str(instant.year)}
    data = {
        "producer": person,
        "learner": person,
        "course": {"hash": "edge", "title": "Edge"},
        "lesson": {"id": str(instant.year), "title": "Edge"},
        "createdAt": text,
    }
    payload = {"id": text, "event": FILE_DOWNLOADED, "sentDate": text, "data": data}
    return json.dumps(payload).encode()


@HOSTILE
@example(  # the earliest and the latest dates kept, far east (every zone: test_admin_dates.py)
    zone="Pacific/Kiritimati",
    sent=[edge_download(EARLIEST), edge_download(LATEST)],
    search="@example.com",
    filters={},
)
@given(
    zone=st.sampled_from(EXTREME_ZONES),
    sent=st.lists(bodies(), min_size=1, max_size=3),
    search=st.one_of(st.none(), TEXTS, st.just("@example.com")),
    filters=hostile_filters(),
)
def test_no_stored_row_breaks_a_page_or_a_command(
    admin_client: Client,
    settings: Any,
    tmp_path: Path,
    zone: str,
    sent: list[bytes],
    search: str | None,
    filters: dict[str, str],
) -> None:
    clear()
    settings.TIME_ZONE = zone
    for body in sent:
        response = post_event(Client(), body)
        assert response.status_code == 200, response.content  # authentic: never refused

    # Every stored date lies where every time zone can show it, with a day to spare.
    stored = [
        *FileDownload.objects.values_list("downloaded_at", flat=True),
        *WebhookEvent.objects.exclude(sent_at=None).values_list("sent_at", flat=True),
    ]
    assert all(EARLIEST <= instant <= LATEST for instant in stored), stored
    event(f"{FileDownload.objects.count()} downloads stored")

    changelists(admin_client, search)
    object_pages(admin_client)
    insight(admin_client)
    export(admin_client)

    downloads = url_of(FileDownload, "changelist")
    with warnings.catch_warnings():
        # A date-time without an offset in a filter is taken in the current time zone,
        # with Django's warning; the admin's own links never write one.
        warnings.filterwarnings("ignore", "DateTimeField .* received a naive", RuntimeWarning)
        response = admin_client.get(downloads, filters)
    note(f"GET {downloads} {filters} -> {response.status_code}")
    assert response.status_code in (200, 400) or (
        response.status_code == 302 and response["Location"].endswith("?e=1")
    ), response.status_code

    commands(tmp_path)
    # What the commands made of the rows (replayed, erased, pruned), shown.
    for model in (FileDownload, Learner, WebhookEvent):
        page(admin_client, url_of(model, "changelist"))
    object_pages(admin_client, models=(Learner, WebhookEvent))
