"""What keeps the lists fast on large tables (base.py), and the same as Django's.

Counts stop at a cap, the date hierarchy and the type filter look rows up by
index, download counts are counted per row shown, searches look up ids first:
each gives what Django's own way gives, which these tests compare.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import result_headers
from django.db import connection
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from eduzz_webhooks.admin.admin import FileDownloadAdmin, LearnerAdmin
from eduzz_webhooks.admin.base import CappedPaginator, IndexedValuesFilter, PeriodQuerySet
from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    WebhookEventFactory,
)

pytestmark = pytest.mark.django_db

DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"
EVENTS = "admin:eduzz_webhooks_webhookevent_changelist"
UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- counted up to a cap ---------------------------------------------------------------------


@pytest.fixture
def cap_of_3(monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    monkeypatch.setattr(FileDownloadAdmin, "list_per_page", 2)


def test_a_list_past_the_cap_says_there_are_more_and_pages_through_the_cap(viewer, cap_of_3):
    FileDownloadFactory.create_batch(5)
    with CaptureQueriesContext(connection) as queries:
        response = viewer.get(reverse(DOWNLOADS))
    cl = response.context["cl"]
    assert cl.paginator.capped
    assert (cl.result_count, cl.paginator.num_pages) == (3, 2)
    content = response.content.decode()
    assert "More than 3 file downloads" in content
    assert 'href="?p=2"' in content
    (count,) = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"]]
    assert "LIMIT 4" in count  # at most the cap and one more row are read
    content = viewer.get(reverse(DOWNLOADS), HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "Mais de 3 " in content
    # Past the cap's pages: Django's answer to a page that doesn't exist.
    assert viewer.get(reverse(DOWNLOADS), {"p": "3"})["Location"].endswith("?e=1")


def test_a_list_within_the_cap_is_counted_as_django_counts_it(viewer, cap_of_3):
    FileDownloadFactory.create_batch(3)
    response = viewer.get(reverse(DOWNLOADS))
    cl = response.context["cl"]
    assert not cl.paginator.capped
    assert cl.result_count == 3
    content = response.content.decode()
    assert "More than" not in content
    assert "3 file downloads" in content


def test_a_search_past_the_cap_shows_no_count_of_results(viewer, cap_of_3):
    learner = LearnerFactory(email="ana@example.com")
    FileDownloadFactory.create_batch(5, learner=learner)
    content = viewer.get(reverse(DOWNLOADS), {"q": "ana@example.com"}).content.decode()
    assert "More than 3 file downloads" in content
    assert " results" not in content  # the search form's "N results (Show all)"
    FileDownloadFactory.create_batch(2)
    content = viewer.get(reverse(DOWNLOADS), {"q": "nobody"}).content.decode()
    assert "0 results" in content


def test_actions_cannot_select_past_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    monkeypatch.setattr(admin.site.get_model_admin(WebhookEvent), "list_per_page", 2)
    WebhookEventFactory.create_batch(3)
    content = admin_client.get(reverse(EVENTS)).content.decode()
    assert "Select all 3 webhook events" in content  # counted: all of them may be selected
    WebhookEventFactory()
    content = admin_client.get(reverse(EVENTS)).content.decode()
    assert "More than 3 webhook events" in content
    assert "Select all 3" not in content  # it would act on more rows than it says
    assert 'class="question' not in content
    assert 'class="action-counter"' in content  # the page's own rows can be selected


# -- date hierarchy: one lookup per period ---------------------------------------------------

# Around São Paulo's DST changes: 2018-11-04 had no midnight (00:00 became 01:00), on
# 2018-02-17 the hour 23:00-24:00 came twice; and around the ends of months and years.
INSTANTS = [
    "2018-02-18 01:30",  # 23:30 on the 17th, before the clocks went back
    "2018-02-18 02:30",  # 23:30 on the 17th again
    "2018-02-18 03:00",  # 00:00 on the 18th
    "2018-11-04 02:59:59",  # 23:59:59 on the 3rd
    "2018-11-04 03:00",  # 01:00 on the 4th, its first instant
    "2018-11-06 10:00",
    "2018-12-01 01:59",  # 23:59 on 30 November
    "2019-01-01 01:59",  # 23:59 on 31 December 2018 (DST: UTC-2)
    "2019-01-01 02:00",  # 00:00 on 1 January 2019
    "2020-07-01 12:00",
]


def hierarchy_rows(*instants: str) -> None:
    lesson = LessonFactory()
    for instant in instants:
        FileDownloadFactory(downloaded_at=at(instant), lesson=lesson)


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("year", "2018-01-01", "2021-01-01"),
        ("month", "2018-01-01", "2021-01-01"),
        ("day", "2018-02-01", "2018-03-01"),
        ("day", "2018-11-01", "2018-12-02"),
    ],
)
@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_periods_are_the_ones_djangos_datetimes_finds(kind, start, end):
    hierarchy_rows(*INSTANTS)
    span = {"downloaded_at__gte": at(start), "downloaded_at__lt": at(end)}
    django_periods = list(FileDownload.objects.filter(**span).datetimes("downloaded_at", kind))
    queryset = PeriodQuerySet(FileDownload).filter(**span)
    with CaptureQueriesContext(connection) as queries:
        periods = list(queryset.datetimes("downloaded_at", kind))
    assert periods == django_periods
    assert len(periods) > 1
    # The bounds, one lookup per period between them, the dates of the rows found.
    bounds, *lookups, dates = [q["sql"] for q in queries.captured_queries]
    assert "MIN(" in bounds
    assert all("LIMIT 1" in lookup for lookup in lookups)
    assert len(lookups) >= len(periods)
    assert " IN (" in dates


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_periods_in_descending_order_and_of_a_filtered_list():
    hierarchy_rows(*INSTANTS)
    other = FileDownloadFactory(downloaded_at=at("2018-11-05 12:00"))
    queryset = PeriodQuerySet(FileDownload).exclude(course=other.course)
    assert list(queryset.datetimes("downloaded_at", "day", "DESC")) == list(
        FileDownload.objects.exclude(course=other.course).datetimes("downloaded_at", "day", "DESC")
    )


def test_too_many_periods_or_other_kinds_are_djangos_datetimes():
    hierarchy_rows("2018-01-01 12:00", "2018-06-01 12:00")
    queryset = PeriodQuerySet(FileDownload)
    assert queryset._period_starts("downloaded_at", "day", UTC) is None  # 152 days
    for kind in ("day", "hour"):
        with CaptureQueriesContext(connection) as queries:
            periods = list(queryset.datetimes("downloaded_at", kind))
        assert periods == list(FileDownload.objects.datetimes("downloaded_at", kind))
        assert len(queries) == (2 if kind == "day" else 1)  # the bounds, or not even those


def test_no_rows_no_periods(django_assert_num_queries):
    with django_assert_num_queries(1):  # the bounds
        assert list(PeriodQuerySet(FileDownload).datetimes("downloaded_at", "month")) == []


def test_date_hierarchy_drills_down_to_the_days_with_downloads(viewer):
    hierarchy_rows("2024-03-01 12:00", "2024-03-03 12:00", "2024-05-02 12:00")
    content = viewer.get(reverse(DOWNLOADS)).content.decode()
    assert 'class="toplinks"' in content
    assert "downloaded_at__month=3" in content
    assert "downloaded_at__month=4" not in content
    assert "downloaded_at__month=5" in content
    month = {"downloaded_at__year": "2024", "downloaded_at__month": "3"}
    content = viewer.get(reverse(DOWNLOADS), month).content.decode()
    assert "downloaded_at__day=1&amp;" in content
    assert "downloaded_at__day=2&amp;" not in content
    assert "downloaded_at__day=3&amp;" in content


def test_no_date_hierarchy_while_searching(viewer):
    FileDownloadFactory(learner=LearnerFactory(email="ana@example.com"))
    assert 'class="toplinks"' in viewer.get(reverse(DOWNLOADS)).content.decode()
    content = viewer.get(reverse(DOWNLOADS), {"q": "ana"}).content.decode()
    assert 'class="toplinks"' not in content


# -- the filter by event type: one lookup per type -------------------------------------------


def test_the_type_filter_lists_each_type_found_by_index(viewer, monkeypatch):
    for event_type in ["b.two", "a.one", "c.three", "a.one"]:
        WebhookEventFactory(event_type=event_type)
    with CaptureQueriesContext(connection) as queries:
        response = viewer.get(reverse(EVENTS))
    (spec,) = [f for f in response.context["cl"].filter_specs if f.field_path == "event_type"]
    assert isinstance(spec, IndexedValuesFilter)
    assert spec.lookup_choices == ["a.one", "b.two", "c.three"]
    scans = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]
    assert not [sql for sql in scans if "event_type" in sql]  # no scan of every event
    response = viewer.get(reverse(EVENTS), {"event_type": "b.two"})
    assert [e.event_type for e in response.context["cl"].result_list] == ["b.two"]
    monkeypatch.setattr(IndexedValuesFilter, "max_values", 2)
    (spec,) = [
        f
        for f in viewer.get(reverse(EVENTS)).context["cl"].filter_specs
        if f.field_path == "event_type"
    ]
    assert spec.lookup_choices == ["a.one", "b.two"]


def test_event_search_is_the_exact_id(viewer):
    event = WebhookEventFactory(event_id="AbC-123")
    WebhookEventFactory(event_id="abc-1234")
    for query, found in [("AbC-123", [event]), ("abc-123", []), ("AbC", [])]:
        response = viewer.get(reverse(EVENTS), {"q": query})
        assert list(response.context["cl"].result_list) == found, query


# -- no counts beside the filters, sortable columns -----------------------------------------


def test_filters_show_no_counts(viewer):
    FileDownloadFactory()
    response = viewer.get(reverse(DOWNLOADS), {"_facets": "True"})
    assert not response.context["cl"].add_facets


@pytest.mark.parametrize(
    ("model", "sortable"),
    [
        ("filedownload", ["downloaded", "learner"]),
        ("webhookevent", ["event_id", "received"]),
        ("learner", ["email", "name"]),
        ("course", ["title", "hash", "producer", "download_count"]),
    ],
)
def test_only_indexed_or_small_columns_sort(viewer, model, sortable):
    FileDownloadFactory()
    response = viewer.get(reverse(f"admin:eduzz_webhooks_{model}_changelist"))
    cl = response.context["cl"]
    headers = zip(cl.list_display, result_headers(cl), strict=True)
    assert [name for name, header in headers if header["sortable"]] == sortable


# -- search: the small tables first ----------------------------------------------------------


@pytest.fixture
def people():
    """Downloads of learners, courses and lessons that searches tell apart."""
    ana = LearnerFactory(email="ana.souza@example.com", name="Ana Souza")
    bia = LearnerFactory(email="bia@gmail.example", name="Beatriz Lima")
    marketing = CourseFactory(title="Marketing digital")
    python = CourseFactory(title="Python para todos")
    for learner in (ana, bia):
        for course in (marketing, python):
            for title in ("Aula 1", "Aula 2: anúncios"):
                FileDownloadFactory(
                    learner=learner, lesson=LessonFactory(course=course, title=title)
                )
    return ana


def djangos_search(model_admin, queryset, term):
    """The rows Django's own search over the admin's search_fields finds."""
    request = RequestFactory().get("/")
    found, _duplicates = admin.ModelAdmin.get_search_results(model_admin, request, queryset, term)
    return set(found)


SAME_AS_DJANGO = [
    "ana.souza@example.com",  # a full e-mail
    "souza@exa",  # a fragment of one
    "gmail",
    "Ana",  # a name
    "ana souza",  # a whole name, any case
    "beatriz lima@",  # nothing
    "marketing",  # a course's title
    "Python todos",
    "anúncios",  # a lesson's title
    '"aula 2"',  # a quoted phrase is one word
    "nobody",
    "Ana ana",
]


@pytest.mark.parametrize("term", SAME_AS_DJANGO)
@pytest.mark.parametrize("search_ids", [10_000, 1])  # by ids, or by text as Django does
def test_downloads_search_finds_what_djangos_finds(people, term, search_ids, monkeypatch):
    monkeypatch.setattr(FileDownloadAdmin, "search_ids", search_ids)
    model_admin = admin.site.get_model_admin(FileDownload)
    queryset = FileDownload.objects.all()
    request = RequestFactory().get("/")
    found, duplicates = model_admin.get_search_results(request, queryset, term)
    assert set(found) == djangos_search(model_admin, queryset, term)
    assert not duplicates


def test_a_search_sends_no_more_ids_than_the_database_takes(people, monkeypatch):
    # 2 ids a table. A property on some databases, cached on others: the cache goes too.
    monkeypatch.setattr(type(connection.features), "max_query_params", 8)
    monkeypatch.delitem(vars(connection.features), "max_query_params", raising=False)
    model_admin = admin.site.get_model_admin(FileDownload)
    queryset = FileDownload.objects.all()
    request = RequestFactory().get("/")
    # 8 lessons match "Aula": compared by text; 1 learner matches "ana": by id.
    for term, by_ids in [("Aula", False), ("ana", True)]:
        found, _duplicates = model_admin.get_search_results(request, queryset, term)
        with CaptureQueriesContext(connection) as queries:
            rows = set(found)
        assert rows == djangos_search(model_admin, queryset, term)
        (sql,) = [q["sql"] for q in queries.captured_queries]
        assert (" IN (" in sql) == by_ids
        assert ("LIKE" in sql) != by_ids


@pytest.mark.parametrize("term", ["ana.souza@example.com", "ana souza", "example Souza", "Lima"])
@pytest.mark.parametrize("search_ids", [10_000, 1])
def test_learners_search_finds_what_djangos_finds(people, term, search_ids, monkeypatch):
    monkeypatch.setattr(LearnerAdmin, "search_ids", search_ids)
    model_admin = admin.site.get_model_admin(Learner)
    queryset = Learner.objects.all()
    found, _duplicates = model_admin.get_search_results(RequestFactory().get("/"), queryset, term)
    assert set(found) == djangos_search(model_admin, queryset, term)
    assert found.exists()


def test_an_e_mail_is_found_in_any_letter_case(viewer, people):
    response = viewer.get(reverse(DOWNLOADS), {"q": "ANA.Souza@Example.COM"})
    assert {d.learner for d in response.context["cl"].result_list} == {people}


def test_each_download_matches_every_word_in_one_of_its_tables(viewer, people):
    # Django's search would also find Ana's downloads of Marketing: "ana" in her name,
    # "marketing" in the course's title. Here all the words are in one table.
    response = viewer.get(reverse(DOWNLOADS), {"q": "ana marketing"})
    assert list(response.context["cl"].result_list) == []
    response = viewer.get(reverse(DOWNLOADS), {"q": "Marketing digital"})
    assert len(response.context["cl"].result_list) == 4
