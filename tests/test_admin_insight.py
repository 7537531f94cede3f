"""The insight page (insight.py): downloads per local day as SVG bars, top courses and lessons."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from eduzz_webhooks.models import FileDownload
from eduzz_webhooks.testing import CourseFactory, FileDownloadFactory, LessonFactory

pytestmark = pytest.mark.django_db

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
INSIGHT = "admin:eduzz_webhooks_filedownload_insight"


def local(*args):
    return dt.datetime(*args, tzinfo=SAO_PAULO)


def filedownload_queries(queries):
    table = connection.ops.quote_name(FileDownload._meta.db_table)  # "..." or `...` (MariaDB)
    return [q["sql"] for q in queries if table in q["sql"]]


@pytest.fixture
def march():
    """Downloads around 1-3 March 2024, São Paulo time (UTC-3)."""
    algebra = CourseFactory(title="Álgebra", hash="hash-algebra")
    biology = CourseFactory(title="Biologia", hash="hash-biology")
    a1 = LessonFactory(course=algebra, title="A1 Conjuntos", external_id="a1")
    a2 = LessonFactory(course=algebra, title="A2 Funções", external_id="a2")
    b1 = LessonFactory(course=biology, title="B1 Células", external_id="b1")
    inside = [
        FileDownloadFactory(lesson=a1, downloaded_at=local(2024, 3, 1, 0, 0)),
        FileDownloadFactory(lesson=a1, downloaded_at=local(2024, 3, 1, 12, 0)),
        FileDownloadFactory(lesson=b1, downloaded_at=local(2024, 3, 1, 13, 0)),
        # 02:00 UTC on 2 March is still 1 March in São Paulo.
        FileDownloadFactory(
            lesson=a2, downloaded_at=dt.datetime(2024, 3, 2, 2, 0, tzinfo=dt.timezone.utc)
        ),
        FileDownloadFactory(lesson=a1, downloaded_at=local(2024, 3, 3, 23, 59)),
    ]
    FileDownloadFactory(lesson=a1, downloaded_at=local(2024, 2, 29, 23, 59))
    FileDownloadFactory(lesson=b1, downloaded_at=local(2024, 3, 4, 0, 0))
    return {"algebra": algebra, "biology": biology, "a1": a1, "a2": a2, "b1": b1, "in": inside}


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_counts_per_local_day_and_tops(viewer, march):
    response = viewer.get(reverse(INSIGHT), {"start": "2024-03-01", "end": "2024-03-03"})
    context = response.context
    assert [(bar.day, bar.downloads) for bar in context["bars"]] == [
        (dt.date(2024, 3, 1), 4),
        (dt.date(2024, 3, 2), 0),
        (dt.date(2024, 3, 3), 1),
    ]
    assert context["total"] == 5
    assert (context["peak"], context["peak_day"]) == (4, dt.date(2024, 3, 1))
    assert [(r.label, r.downloads) for r in context["top_courses"]] == [
        ("Álgebra", 4),
        ("Biologia", 1),
    ]
    assert [(r.label, r.context, r.downloads) for r in context["top_lessons"]] == [
        ("A1 Conjuntos", "Álgebra", 3),
        ("A2 Funções", "Álgebra", 1),
        ("B1 Células", "Biologia", 1),
    ]
    content = response.content.decode()
    # The chart: one bar per day, scaled by the viewBox (width: days, height: the peak).
    assert 'viewBox="0 0 3 4"' in content
    assert '<rect x="0.1" y="0" width="0.8" height="4"' in content
    assert '<rect x="1.1" y="4" width="0.8" height="0"' in content
    assert '<rect x="2.1" y="3" width="0.8" height="1"' in content
    assert "<script" not in content.split('id="content-main"')[1]


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_links_open_the_matching_downloads(viewer, march):
    context = viewer.get(reverse(INSIGHT), {"start": "2024-03-01", "end": "2024-03-03"}).context

    def listed(url):
        response = viewer.get(url)
        assert response.status_code == 200, url
        return set(response.context["cl"].result_list)

    a1_midnight, a1_noon, b1, a2, a1_late = march["in"]
    assert listed(context["period_url"]) == set(march["in"])
    assert listed(context["top_courses"][0].url) == {a1_midnight, a1_noon, a2, a1_late}
    assert listed(context["top_lessons"][0].url) == {a1_midnight, a1_noon, a1_late}
    assert listed(context["bars"][0].url) == {a1_midnight, a1_noon, b1, a2}
    assert listed(context["bars"][1].url) == set()


def test_insight_lists_the_top_ten(viewer):
    day = timezone.now() - dt.timedelta(hours=1)
    for n in range(12):
        FileDownloadFactory.create_batch(n + 1, lesson=LessonFactory(), downloaded_at=day)
    context = viewer.get(reverse(INSIGHT)).context
    assert [r.downloads for r in context["top_courses"]] == list(range(12, 2, -1))
    assert [r.downloads for r in context["top_lessons"]] == list(range(12, 2, -1))


def test_insight_queries_are_few_and_do_not_grow_with_rows(viewer):
    def run():
        with CaptureQueriesContext(connection) as queries:
            assert viewer.get(reverse(INSIGHT)).status_code == 200
        return queries

    # In the period, so that the top lists are fetched here too (an empty one
    # costs no query, and the factory's random date may fall outside).
    FileDownloadFactory(downloaded_at=timezone.now())
    few = run()
    lesson = LessonFactory()
    for days in range(25):
        FileDownloadFactory.create_batch(
            2, lesson=lesson, downloaded_at=timezone.now() - dt.timedelta(days=days)
        )
    FileDownloadFactory.create_batch(15)
    many = run()
    assert len(many) == len(few)
    # Per day, top courses, top lessons: aggregated in the database, on the date range.
    aggregates = filedownload_queries(many.captured_queries)
    assert len(aggregates) == 3
    assert all("GROUP BY" in sql and "downloaded_at" in sql for sql in aggregates)


def test_insight_chart_numbers_are_not_localized(viewer):
    FileDownloadFactory()
    # The request activates Portuguese and nothing deactivates it: put the language back.
    with translation.override(translation.get_language()):
        response = viewer.get(reverse(INSIGHT), HTTP_ACCEPT_LANGUAGE="pt-br")
    content = response.content.decode()
    assert 'lang="pt-br"' in content
    # SVG needs "29.1", never the pt-BR "29,1", whichever day the bars fall on.
    numbers = re.findall(r'<rect x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"', content)
    assert numbers
    assert all(re.fullmatch(r"\d+(\.\d+)?", n) for rect in numbers for n in rect)
