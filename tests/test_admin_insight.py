"""The insight page (insight.py): downloads and learners per local day, the chart, the tops."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import django
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from eduzz_webhooks.admin import chart
from eduzz_webhooks.models import FileDownload
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
)

pytestmark = pytest.mark.django_db

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
INSIGHT = "admin:eduzz_webhooks_filedownload_insight"
MARCH = {"start": "2024-03-01", "end": "2024-03-03"}


def local(*args):
    return dt.datetime(*args, tzinfo=SAO_PAULO)


def filedownload_queries(queries):
    table = connection.ops.quote_name(FileDownload._meta.db_table)  # "..." or `...` (MariaDB)
    return [q["sql"] for q in queries if table in q["sql"]]


def svg(response):
    content = response.content.decode()
    start = content.index("<svg role")
    return content[start : content.index("</svg>", start)]


@pytest.fixture
def march():
    """Downloads around 1-3 March 2024, São Paulo time (UTC-3), by Ana, Bia and Caio."""
    algebra = CourseFactory(title="Álgebra", hash="hash-algebra")
    biology = CourseFactory(title="Biologia", hash="hash-biology")
    a1 = LessonFactory(course=algebra, title="A1 Conjuntos", external_id="a1")
    a2 = LessonFactory(course=algebra, title="A2 Funções", external_id="a2")
    b1 = LessonFactory(course=biology, title="B1 Células", external_id="b1")
    ana = LearnerFactory(name="Ana", email="ana@example.com")
    bia = LearnerFactory(name="", email="bia@example.com")
    caio = LearnerFactory(name="Caio", email="caio@example.com")
    inside = [
        FileDownloadFactory(lesson=a1, learner=ana, downloaded_at=local(2024, 3, 1, 0, 0)),
        FileDownloadFactory(lesson=a1, learner=ana, downloaded_at=local(2024, 3, 1, 12, 0)),
        FileDownloadFactory(lesson=b1, learner=bia, downloaded_at=local(2024, 3, 1, 13, 0)),
        # 02:00 UTC on 2 March is still 1 March in São Paulo.
        FileDownloadFactory(
            lesson=a2,
            learner=caio,
            downloaded_at=dt.datetime(2024, 3, 2, 2, 0, tzinfo=dt.UTC),
        ),
        FileDownloadFactory(lesson=a1, learner=ana, downloaded_at=local(2024, 3, 3, 23, 59)),
    ]
    FileDownloadFactory(lesson=a1, learner=bia, downloaded_at=local(2024, 2, 29, 23, 59))
    FileDownloadFactory(lesson=b1, learner=caio, downloaded_at=local(2024, 3, 4, 0, 0))
    return {
        "algebra": algebra,
        "biology": biology,
        "a1": a1,
        "a2": a2,
        "b1": b1,
        "ana": ana,
        "bia": bia,
        "in": inside,
    }


# -- the figures ----------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_counts_downloads_and_learners_per_local_day(viewer, march):
    context = viewer.get(reverse(INSIGHT), MARCH).context
    assert [(d.day, d.downloads, d.learners) for d in context["days"]] == [
        (dt.date(2024, 3, 1), 4, 3),
        (dt.date(2024, 3, 2), 0, 0),
        (dt.date(2024, 3, 3), 1, 1),
    ]
    assert context["total"] == 5
    assert (context["peak"], context["peak_day"]) == (4, dt.date(2024, 3, 1))


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_tops_courses_lessons_and_learners(viewer, march):
    context = viewer.get(reverse(INSIGHT), MARCH).context
    assert [(r.label, r.downloads) for r in context["top_courses"]] == [
        ("Álgebra", 4),
        ("Biologia", 1),
    ]
    assert [(r.label, r.context, r.downloads) for r in context["top_lessons"]] == [
        ("A1 Conjuntos", "Álgebra", 3),
        ("A2 Funções", "Álgebra", 1),
        ("B1 Células", "Biologia", 1),
    ]
    # A learner without a name shows their e-mail once.
    assert [(r.label, r.context, r.downloads) for r in context["top_learners"]] == [
        ("Ana", "ana@example.com", 3),
        ("bia@example.com", "", 1),
        ("Caio", "caio@example.com", 1),
    ]


def test_insight_lists_the_top_ten(viewer):
    day = timezone.now() - dt.timedelta(hours=1)
    for n in range(12):
        FileDownloadFactory.create_batch(
            n + 1, lesson=LessonFactory(), learner=LearnerFactory(), downloaded_at=day
        )
    context = viewer.get(reverse(INSIGHT)).context
    assert [r.downloads for r in context["top_courses"]] == list(range(12, 2, -1))
    assert [r.downloads for r in context["top_lessons"]] == list(range(12, 2, -1))
    assert [r.downloads for r in context["top_learners"]] == list(range(12, 2, -1))


# -- the links --------------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_links_open_the_matching_downloads(viewer, march):
    context = viewer.get(reverse(INSIGHT), MARCH).context

    def listed(url):
        response = viewer.get(url)
        assert response.status_code == 200, url
        return set(response.context["cl"].result_list)

    a1_midnight, a1_noon, b1, a2, a1_late = march["in"]
    assert listed(context["period_url"]) == set(march["in"])
    assert listed(context["top_courses"][0].url) == {a1_midnight, a1_noon, a2, a1_late}
    assert listed(context["top_lessons"][0].url) == {a1_midnight, a1_noon, a1_late}
    assert listed(context["top_learners"][0].downloads_url) == {a1_midnight, a1_noon, a1_late}
    assert listed(context["days"][0].url) == {a1_midnight, a1_noon, b1, a2}
    assert listed(context["days"][1].url) == set()


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_top_learners_link_to_their_history(viewer, march):
    response = viewer.get(reverse(INSIGHT), MARCH)
    ana = response.context["top_learners"][0]
    assert ana.url == reverse("admin:eduzz_webhooks_learner_change", args=[march["ana"].pk])
    assert viewer.get(ana.url).status_code == 200
    assert f'<a href="{ana.url}">Ana</a>' in response.content.decode()


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_top_learners_are_not_links_for_who_may_not_see_learners(client, march):
    user = User.objects.create_user("downloads-only", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_filedownload"))
    client.force_login(user)
    response = client.get(reverse(INSIGHT), MARCH)
    assert [r.url for r in response.context["top_learners"]] == ["", "", ""]
    assert reverse("admin:eduzz_webhooks_learner_change", args=[march["ana"].pk]) not in (
        response.content.decode()
    )


# -- by course ----------------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_of_one_course_filters_every_figure_and_link(viewer, march):
    response = viewer.get(reverse(INSIGHT), {**MARCH, "course": march["algebra"].pk})
    context = response.context
    assert [(d.downloads, d.learners) for d in context["days"]] == [(3, 2), (0, 0), (1, 1)]
    assert (context["total"], context["peak"]) == (4, 3)
    assert context["top_courses"] == []  # it would be the course itself
    assert [r.label for r in context["top_lessons"]] == ["A1 Conjuntos", "A2 Funções"]
    assert [(r.label, r.downloads) for r in context["top_learners"]] == [("Ana", 3), ("Caio", 1)]
    assert context["form"]["course"].value() == march["algebra"].pk
    assert "Downloads per day · Álgebra" in response.content.decode()

    def listed(url):
        return set(viewer.get(url).context["cl"].result_list)

    a1_midnight, a1_noon, _b1, a2, a1_late = march["in"]
    assert listed(context["period_url"]) == {a1_midnight, a1_noon, a2, a1_late}
    assert listed(context["days"][0].url) == {a1_midnight, a1_noon, a2}


# -- the default period ---------------------------------------------------------------------------


def test_insight_opens_on_the_latest_downloads_when_the_last_30_days_have_none(viewer):
    today = timezone.localdate()
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=timezone.get_current_timezone())
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=110))  # before that period
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=80))
    response = viewer.get(reverse(INSIGHT))
    context = response.context
    latest = today - dt.timedelta(days=80)
    assert (context["start"], context["end"]) == (latest - dt.timedelta(days=29), latest)
    assert context["total"] == 1
    assert context["moved"]
    assert context["form"]["end"].value() == latest
    assert "No downloads in the last 30 days" in response.content.decode()


def test_insight_keeps_the_dates_it_was_given_even_without_downloads(viewer):
    FileDownloadFactory(downloaded_at=timezone.now() - dt.timedelta(days=80))
    context = viewer.get(reverse(INSIGHT), {"end": timezone.localdate().isoformat()}).context
    assert (context["end"], context["total"], context["moved"]) == (
        timezone.localdate(),
        0,
        False,
    )


def test_insight_moves_to_the_chosen_course_s_latest_downloads(viewer):
    quiet = FileDownloadFactory(downloaded_at=timezone.now() - dt.timedelta(days=60))
    FileDownloadFactory(downloaded_at=timezone.now())  # another course, today
    context = viewer.get(reverse(INSIGHT), {"course": quiet.course_id}).context
    assert context["end"] == timezone.localdate(quiet.downloaded_at)
    assert context["total"] == 1


def test_insight_of_no_downloads_at_all_says_so(viewer):
    response = viewer.get(reverse(INSIGHT))
    assert response.context["total"] == 0
    assert not response.context["moved"]
    content = response.content.decode()
    assert "0 downloads from" in content
    assert "<svg role" not in content


# -- the chart --------------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_chart_draws_bars_and_the_learners_line(viewer, march):
    response = viewer.get(reverse(INSIGHT), MARCH)
    drawing = svg(response)
    # Scaled to the value axis, whose top is the busiest day here (4, in steps of 1).
    full, quarter = chart.PLOT_HEIGHT, chart.PLOT_HEIGHT / 4
    heights = re.findall(r'<rect class="insight-bar" [^>]*height="([^"]*)"', drawing)
    assert heights == [f"{full:.1f}", "0.0", f"{quarter:.1f}"]
    assert [d.point_y for d in response.context["days"]] == [
        f"{chart.TOP + quarter:.1f}",  # 3 learners of 4
        f"{chart.TOP + full:.1f}",
        f"{chart.TOP + 3 * quarter:.1f}",
    ]
    assert drawing.count('<circle class="insight-learner"') == 3
    assert "<polyline" in drawing
    assert "<script" not in response.content.decode().split('id="content-main"')[1]


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_insight_chart_has_axes_labels_and_a_title_per_day(viewer, march):
    drawing = svg(viewer.get(reverse(INSIGHT), MARCH))
    assert 'aria-labelledby="insight-chart-title"' in drawing
    assert '<title id="insight-chart-title">Downloads and distinct learners per day' in drawing
    assert '<desc id="insight-chart-desc">Bars: downloads. Line with dots' in drawing
    values = re.findall(r'<text class="insight-value"[^>]*>(\d+)</text>', drawing)
    assert values == ["0", "1", "2", "3", "4"]
    assert ">March 1</text>" in drawing
    assert ">2024</text>" in drawing
    assert "Day (America/Sao_Paulo time)" in drawing
    # Hovering a day shows its figures: the browser's tooltip of its <title>.
    assert "<title>03/01/2024: 4 downloads, 3 learners</title>" in drawing
    assert "<title>03/02/2024: 0 downloads, 0 learners</title>" in drawing
    assert "<title>03/03/2024: 1 download, 1 learner</title>" in drawing
    # The day-by-day table has the same links: the chart's stay out of the tab order.
    assert drawing.count('tabindex="-1"') == 3


def test_insight_chart_numbers_are_not_localized(viewer):
    FileDownloadFactory.create_batch(3, downloaded_at=timezone.now())
    # The request activates Portuguese and nothing deactivates it: put the language back.
    with translation.override(translation.get_language()):
        response = viewer.get(reverse(INSIGHT), HTTP_ACCEPT_LANGUAGE="pt-br")
    assert 'lang="pt-br"' in response.content.decode()
    drawing = svg(response)
    # SVG needs "29.1", never the pt-BR "29,1", wherever the shapes fall.
    coordinates = re.findall(r' (?:x|y|x1|x2|y1|y2|width|height|cx|cy|r|dx|dy)="([^"]*)"', drawing)
    assert len(coordinates) > 100
    assert all(re.fullmatch(r"-?\d+(\.\d+)?%?", n) for n in coordinates)
    (points,) = re.findall(r'points="([^"]*)"', drawing)
    assert all(re.fullmatch(r"\d+\.\d,\d+\.\d", p) for p in points.split())


def test_insight_breadcrumbs_use_the_admin_s_markup(viewer):
    content = viewer.get(reverse(INSIGHT)).content.decode()
    # Django 6 styles only a list of breadcrumbs; 5.2 only a div of them.
    if django.VERSION >= (6, 0):
        assert '<ol class="breadcrumbs">' in content
    else:
        assert '<div class="breadcrumbs">' in content


# -- queries ----------------------------------------------------------------------------------

# Session and user (2), the user's permissions (2), the latest download (1, only
# when no dates are given), per day (1), top courses, lessons and learners (2
# each), the course select's options (1); with a course: + 1 to check it, - 2
# for the top courses it doesn't show.
DEFAULT_QUERIES = 13
COURSE_QUERIES = 12
DATES_QUERIES = 12


def test_insight_queries_are_pinned(viewer, django_assert_num_queries):
    download = FileDownloadFactory(downloaded_at=timezone.now())
    with django_assert_num_queries(DEFAULT_QUERIES):
        assert viewer.get(reverse(INSIGHT)).status_code == 200
    with django_assert_num_queries(COURSE_QUERIES):
        assert viewer.get(reverse(INSIGHT), {"course": download.course_id}).status_code == 200
    with django_assert_num_queries(DATES_QUERIES):
        today = timezone.localdate().isoformat()
        assert viewer.get(reverse(INSIGHT), {"end": today}).status_code == 200


def test_insight_queries_do_not_grow_with_days_courses_or_learners(
    viewer, django_assert_num_queries
):
    now = timezone.now()
    lesson = LessonFactory()
    for days in range(300):
        FileDownloadFactory(lesson=lesson, downloaded_at=now - dt.timedelta(days=days))
    FileDownloadFactory.create_batch(15, downloaded_at=now)  # 15 more courses and learners
    year = {"start": (timezone.localdate() - dt.timedelta(days=365)).isoformat()}
    with django_assert_num_queries(DATES_QUERIES):
        assert len(viewer.get(reverse(INSIGHT), year).context["days"]) == 366
    with django_assert_num_queries(DEFAULT_QUERIES):
        viewer.get(reverse(INSIGHT))


def test_insight_aggregates_in_the_database_on_the_date_range(viewer):
    FileDownloadFactory(downloaded_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        viewer.get(reverse(INSIGHT))
    latest, *aggregates = filedownload_queries(queries.captured_queries)
    assert "ORDER BY" in latest
    assert "LIMIT 1" in latest
    # Per day, top courses, top lessons, top learners.
    assert len(aggregates) == 4
    assert all("GROUP BY" in sql and "downloaded_at" in sql for sql in aggregates)
