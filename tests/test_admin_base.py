"""What keeps the lists fast on large tables (base.py), and the same as Django's.

Counts stop at a cap, the date filter filters by ranges of the date index, the
type filter looks types up by index, download counts are counted per row shown,
searches look up ids first: each gives what Django's own way gives, which these
tests compare.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import result_headers
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from eduzz_webhooks.admin.admin import FileDownloadAdmin, LearnerAdmin
from eduzz_webhooks.admin.base import CappedPaginator, IndexedValuesFilter
from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    WebhookEventFactory,
)
from tests.conftest import date_choices

pytestmark = pytest.mark.django_db

DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"
EVENTS = "admin:eduzz_webhooks_webhookevent_changelist"


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


# -- the date filter: ranges of the date index -----------------------------------------------


@pytest.mark.parametrize(("url", "field"), [(DOWNLOADS, "downloaded_at"), (EVENTS, "received_at")])
def test_each_date_choice_filters_by_a_range_of_the_date_column(viewer, url, field):
    FileDownloadFactory()
    response = viewer.get(reverse(url))
    assert not response.context["cl"].date_hierarchy
    assert 'class="toplinks"' not in response.content.decode()
    for title, query in date_choices(response, field).items():
        assert set(query) == {f"{field}__gte", f"{field}__lt"}, title
        with CaptureQueriesContext(connection) as queries:
            assert viewer.get(reverse(url), query).status_code == 200
        # No query truncates or takes apart the date of each row (which its index can't serve).
        for sql in (q["sql"] for q in queries.captured_queries):
            assert not re.search(r"EXTRACT|TRUNC|django_date|strftime|DISTINCT", sql, re.I), sql


# -- the filter by event type: one lookup per type -------------------------------------------


def test_the_type_filter_lists_each_type_found_by_index(viewer, monkeypatch):
    for event_type in ["b.two", "a.one", "c.three", "a.one"]:
        WebhookEventFactory(event_type=event_type)
    with CaptureQueriesContext(connection) as queries:
        response = viewer.get(reverse(EVENTS))
    cl = response.context["cl"]
    (spec,) = [f for f in cl.filter_specs if isinstance(f, IndexedValuesFilter)]
    assert spec.title == "event type"
    assert [c["display"] for c in spec.choices(cl)] == ["All", "a.one", "b.two", "c.three"]
    scans = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]
    assert not [sql for sql in scans if "event_type" in sql]  # no scan of every event
    response = viewer.get(reverse(EVENTS), {"event_type": "b.two"})
    cl = response.context["cl"]
    assert [e.event_type for e in cl.result_list] == ["b.two"]
    (spec,) = [f for f in cl.filter_specs if isinstance(f, IndexedValuesFilter)]
    assert [c["display"] for c in spec.choices(cl) if c["selected"]] == ["b.two"]
    monkeypatch.setattr(IndexedValuesFilter, "max_values", 2)
    cl = viewer.get(reverse(EVENTS)).context["cl"]
    (spec,) = [f for f in cl.filter_specs if isinstance(f, IndexedValuesFilter)]
    assert spec.lookup_choices == [("a.one", "a.one"), ("b.two", "b.two")]


def test_event_search_is_the_exact_id(viewer):
    event = WebhookEventFactory(event_id="AbC-123")
    WebhookEventFactory(event_id="abc-1234")
    for query, found in [("AbC-123", [event]), ("abc-123", []), ("AbC", [])]:
        response = viewer.get(reverse(EVENTS), {"q": query})
        assert list(response.context["cl"].result_list) == found, query


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (EVENTS, {"event_type": "a\x00"}),
        (EVENTS, {"status": "\x00"}),
        (EVENTS, {"event_id": "a\x00b"}),
        ("admin:eduzz_webhooks_course_changelist", {"title__startswith": "\x00"}),
    ],
)
def test_a_filter_with_nul_is_not_allowed(viewer, url, params):
    # No stored text holds NUL, and PostgreSQL refuses it in a query: 400, on every database.
    WebhookEventFactory(event_type="a")
    assert viewer.get(reverse(url), params).status_code == 400


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
