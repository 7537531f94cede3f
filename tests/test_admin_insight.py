"""The admin as a window on the business: insight page, CSV export, history tables, badges."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks import admin as eduzz_admin
from eduzz_webhooks import signals
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.samples import sample_payload
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    ProducerFactory,
    WebhookEventFactory,
)

pytestmark = pytest.mark.django_db

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
INSIGHT = "admin:eduzz_webhooks_filedownload_insight"
EXPORT = "admin:eduzz_webhooks_filedownload_export"
DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"


def login(client, *codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="eduzz_webhooks", codename__in=codenames)
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    """Staff with the view permission of every model of the app, and nothing else."""
    return login(
        client,
        "view_filedownload",
        "view_course",
        "view_lesson",
        "view_learner",
        "view_producer",
        "view_webhookevent",
    )


def local(*args):
    return dt.datetime(*args, tzinfo=SAO_PAULO)


def filedownload_queries(queries):
    table = connection.ops.quote_name(FileDownload._meta.db_table)  # "..." or `...` (MariaDB)
    return [q["sql"] for q in queries if table in q["sql"]]


def csv_rows(response):
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


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


# -- permissions ------------------------------------------------------------------------


def pages():
    download = FileDownloadFactory()
    return [
        reverse(INSIGHT),
        reverse(EXPORT),
        reverse("admin:eduzz_webhooks_learner_change", args=[download.learner_id]),
        reverse("admin:eduzz_webhooks_course_change", args=[download.course_id]),
    ]


def test_pages_open_with_view_permission_only(viewer):
    for url in pages():
        assert viewer.get(url).status_code == 200, url


def test_pages_refused_without_view_permission(client):
    login(client)
    for url in pages():
        assert client.get(url).status_code == 403, url


def test_download_tables_need_the_download_view_permission(client):
    login(client, "view_learner", "view_course", "view_lesson")
    insight, export, learner, course = pages()
    assert client.get(insight).status_code == 403
    assert client.get(export).status_code == 403
    # The learner and course pages open, but without the download tables.
    assert "download_history" not in client.get(learner).context["adminform"].readonly_fields
    assert "lesson_downloads" not in client.get(course).context["adminform"].readonly_fields


def test_pages_send_anonymous_users_to_login(client):
    for url in pages():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login"))


def test_downloads_list_links_to_insight_and_export(viewer):
    FileDownloadFactory.create_batch(2)
    response = viewer.get(reverse(DOWNLOADS), {"q": "x@y", "p": "0", "o": "1"})
    content = response.content.decode()
    assert f'href="{reverse(INSIGHT)}"' in content
    # The export carries filters, search and ordering, but not the page.
    assert f'href="{reverse(EXPORT)}?q=x%40y&amp;o=1"' in content


# -- insight ------------------------------------------------------------------------------


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


def test_insight_default_period_is_the_last_30_days(viewer):
    today = timezone.localdate()
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=timezone.get_current_timezone())
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=29))
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=30))
    context = viewer.get(reverse(INSIGHT)).context
    assert len(context["bars"]) == 30
    assert (context["start"], context["end"]) == (today - dt.timedelta(days=29), today)
    assert context["total"] == 1
    assert context["form"]["start"].value() == today - dt.timedelta(days=29)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"start": "2024-02-30"}, "Enter a valid date."),
        ({"end": "yesterday"}, "Enter a valid date."),
        (
            {"start": "2024-03-02", "end": "2024-03-01"},
            "The start date must not be after the end date.",
        ),
        ({"start": "2023-01-01", "end": "2024-01-02"}, "Choose a period of at most 366 days."),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "These dates are out of range."),
    ],
)
def test_insight_refuses_bad_periods_clearly(viewer, params, error):
    FileDownloadFactory()
    response = viewer.get(reverse(INSIGHT), params)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "bars" not in response.context
    assert 'class="errornote"' in response.content.decode()


def test_insight_accepts_a_full_year(viewer):
    response = viewer.get(reverse(INSIGHT), {"start": "2024-01-01", "end": "2024-12-31"})
    assert len(response.context["bars"]) == 366


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
    response = viewer.get(reverse(INSIGHT), HTTP_ACCEPT_LANGUAGE="pt-br")
    content = response.content.decode()
    assert 'lang="pt-br"' in content
    # SVG needs "29.1", never the pt-BR "29,1", whichever day the bars fall on.
    numbers = re.findall(r'<rect x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"', content)
    assert numbers
    assert all(re.fullmatch(r"\d+(\.\d+)?", n) for rect in numbers for n in rect)


# -- CSV export ---------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_export_writes_every_column(viewer):
    download = FileDownloadFactory(
        downloaded_at=dt.datetime(2024, 3, 2, 2, 30, tzinfo=dt.timezone.utc),
        learner=LearnerFactory(email="ana@example.com", name="Ana Souza"),
        lesson=LessonFactory(
            external_id="L-9",
            title="Aula, com vírgula",
            course=CourseFactory(
                hash="h1", title='Curso "A"', producer=ProducerFactory(email="p@example.com")
            ),
        ),
    )
    response = viewer.get(reverse(EXPORT))
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate()
    assert response["Content-Disposition"] == (
        f'attachment; filename="file-downloads-{today:%Y-%m-%d}.csv"'
    )
    assert csv_rows(response) == [
        [
            "downloaded at",
            "learner e-mail",
            "learner name",
            "course hash",
            "course title",
            "lesson id",
            "lesson title",
            "producer e-mail",
            "event id",
        ],
        [
            "2024-03-01T23:30:00-03:00",
            "ana@example.com",
            "Ana Souza",
            "h1",
            'Curso "A"',
            "L-9",
            "Aula, com vírgula",
            "p@example.com",
            download.event.event_id,
        ],
    ]


def test_export_honours_search_filters_and_order(viewer):
    ana = LearnerFactory(email="ana@example.com")
    course = CourseFactory()
    now = timezone.now()
    old = FileDownloadFactory(learner=ana, downloaded_at=now - dt.timedelta(days=2))
    new = FileDownloadFactory(learner=ana, downloaded_at=now - dt.timedelta(days=1))
    in_course = FileDownloadFactory(lesson=LessonFactory(course=course))
    FileDownloadFactory()

    def events(**params):
        return [row[-1] for row in csv_rows(viewer.get(reverse(EXPORT), params))[1:]]

    assert events(q="ana@example") == [new.event.event_id, old.event.event_id]
    assert events(q="ana@example", o="0") == [old.event.event_id, new.event.event_id]
    assert events(course__id__exact=str(course.pk)) == [in_course.event.event_id]
    assert len(events()) == 4
    # What the list shows, all of its pages: a page number does not limit the export.
    assert len(events(p="2")) == 4


def test_export_with_bad_filters_explains_and_writes_nothing(viewer):
    FileDownloadFactory.create_batch(2)  # two courses: the course filter is on
    response = viewer.get(reverse(EXPORT), {"course__id__exact": "not-a-number"}, follow=True)
    assert response.redirect_chain == [(reverse(DOWNLOADS), 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "These filters are not valid: nothing was exported."
    ]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_export_defuses_formulas(viewer, prefix):
    FileDownloadFactory(
        learner=LearnerFactory(name=f'{prefix}HYPERLINK("http://evil")'),
        lesson=LessonFactory(title=f"{prefix}1+1"),
    )
    (_header, row) = csv_rows(viewer.get(reverse(EXPORT)))
    assert row[2] == f'\'{prefix}HYPERLINK("http://evil")'
    assert row[6] == f"'{prefix}1+1"
    assert not row[0].startswith("'")


def test_export_streams_in_chunks_with_constant_queries(viewer, monkeypatch):
    monkeypatch.setattr(eduzz_admin, "EXPORT_CHUNK_ROWS", 5)

    def run():
        with CaptureQueriesContext(connection) as queries:
            response = viewer.get(reverse(EXPORT))
            chunks = list(response.streaming_content)
        return queries, chunks

    FileDownloadFactory.create_batch(2)
    few, few_chunks = run()
    FileDownloadFactory.create_batch(20)
    many, many_chunks = run()
    assert len(many) == len(few)
    assert len(few_chunks) == 1
    assert len(many_chunks) == 5  # 22 rows by 5: four full chunks and the rest
    assert sum(chunk.count(b"\n") for chunk in many_chunks) == 23
    # One query brings the rows with their learner, course, lesson, producer and event.
    (rows,) = [sql for sql in filedownload_queries(many.captured_queries) if "JOIN" in sql]
    assert "payload" not in rows


# -- learner and course pages ----------------------------------------------------------


def test_learner_page_shows_the_latest_downloads(viewer, monkeypatch):
    monkeypatch.setattr(eduzz_admin.LearnerAdmin, "history_rows", 3)
    learner = LearnerFactory()
    now = timezone.now()
    downloads = [
        FileDownloadFactory(learner=learner, downloaded_at=now - dt.timedelta(hours=h))
        for h in range(5)
    ]
    FileDownloadFactory()  # someone else's
    url = reverse("admin:eduzz_webhooks_learner_change", args=[learner.pk])
    content = viewer.get(url).content.decode()
    change = [reverse("admin:eduzz_webhooks_filedownload_change", args=[d.pk]) for d in downloads]
    positions = [content.find(f'href="{u}"') for u in change]
    assert -1 < positions[0] < positions[1] < positions[2]
    assert positions[3] == positions[4] == -1
    assert "The latest 3 of 5 downloads." in content
    assert f'href="{reverse(DOWNLOADS)}?learner__id__exact={learner.pk}"' in content


def test_learner_history_link_lists_all_their_downloads(viewer):
    learner = LearnerFactory()
    mine = set(FileDownloadFactory.create_batch(3, learner=learner))
    FileDownloadFactory()
    response = viewer.get(reverse(DOWNLOADS), {"learner__id__exact": learner.pk})
    assert set(response.context["cl"].result_list) == mine


def test_learner_page_queries_do_not_grow_with_downloads(viewer):
    learner = LearnerFactory()
    FileDownloadFactory(learner=learner)
    url = reverse("admin:eduzz_webhooks_learner_change", args=[learner.pk])
    with CaptureQueriesContext(connection) as few:
        viewer.get(url)
    FileDownloadFactory.create_batch(20, learner=learner)
    with CaptureQueriesContext(connection) as many:
        viewer.get(url)
    assert len(many) == len(few)


def test_course_page_shows_lessons_with_download_counts(viewer, monkeypatch):
    course = CourseFactory()
    busy = LessonFactory(course=course, title="Busy")
    quiet = LessonFactory(course=course, title="Quiet")
    FileDownloadFactory.create_batch(3, lesson=busy)
    FileDownloadFactory(lesson=LessonFactory(title="Other course"))
    url = reverse("admin:eduzz_webhooks_course_change", args=[course.pk])
    response = viewer.get(url)
    content = response.content.decode()
    downloads = reverse(DOWNLOADS)
    assert f'<a href="{downloads}?lesson__id__exact={busy.pk}">3</a>' in content
    assert f'<a href="{downloads}?lesson__id__exact={quiet.pk}">0</a>' in content
    assert content.find("Busy") < content.find("Quiet")
    assert "Other course" not in content
    assert "most downloaded lessons" not in content

    monkeypatch.setattr(eduzz_admin.CourseAdmin, "lesson_rows", 1)
    content = viewer.get(url).content.decode()
    assert "Quiet" not in content
    lessons = reverse("admin:eduzz_webhooks_lesson_changelist")
    assert f'href="{lessons}?course__id__exact={course.pk}"' in content
    response = viewer.get(lessons, {"course__id__exact": course.pk})
    assert set(response.context["cl"].result_list) == {busy, quiet}


def test_course_page_counts_lessons_in_one_query(viewer):
    course = CourseFactory()
    LessonFactory(course=course)
    url = reverse("admin:eduzz_webhooks_course_change", args=[course.pk])
    with CaptureQueriesContext(connection) as few:
        viewer.get(url)
    for lesson in LessonFactory.create_batch(10, course=course):
        FileDownloadFactory.create_batch(2, lesson=lesson)
    with CaptureQueriesContext(connection) as many:
        viewer.get(url)
    assert len(many) == len(few)


# -- events list and replay ------------------------------------------------------------


def test_event_list_shows_status_badges_with_text(viewer):
    WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    WebhookEventFactory(status=WebhookEvent.Status.PROCESSED)
    WebhookEventFactory(status=WebhookEvent.Status.RECEIVED)
    content = viewer.get(reverse("admin:eduzz_webhooks_webhookevent_changelist")).content.decode()
    for icon, text in [
        ("icon-no.svg", "failed"),
        ("icon-yes.svg", "processed"),
        ("icon-unknown.svg", "received"),
    ]:
        assert (
            f'<img src="/static/admin/img/{icon}" alt="" width="13" height="13">&nbsp;{text}'
            in content
        )


def test_replay_inside_a_transaction_says_receivers_run_at_commit(admin_client):
    # A test transaction never commits: like a host project with ATOMIC_REQUESTS.
    payload = sample_payload("nutror.file_downloaded")
    event = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED
    )
    response = admin_client.post(
        reverse("admin:eduzz_webhooks_webhookevent_changelist"),
        {"action": "replay", "_selected_action": [event.pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "1 event replayed; its receivers run when this request's transaction commits."
    ]


@pytest.mark.django_db(transaction=True)
def test_replay_skips_events_taken_meanwhile_and_says_so(admin_client):
    now = timezone.now()
    payload = sample_payload("nutror.file_downloaded")
    first = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED, received_at=now
    )
    second = WebhookEventFactory(
        status=WebhookEvent.Status.FAILED, received_at=now - dt.timedelta(minutes=1)
    )

    def take_second(sender, event, **kwargs):
        # While the first event is replayed, another worker claims the second one.
        if event.pk == first.pk:
            WebhookEvent.objects.filter(pk=second.pk).update(status=WebhookEvent.Status.RECEIVED)

    signals.event_received.connect(take_second, weak=False)
    try:
        response = admin_client.post(
            reverse("admin:eduzz_webhooks_webhookevent_changelist"),
            {"action": "replay", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )
    finally:
        signals.event_received.disconnect(take_second)
    assert [str(m) for m in response.context["messages"]] == [
        "1 event replayed and processed.",
        "1 event skipped: another replay or delivery took it meanwhile.",
    ]
    second.refresh_from_db()
    assert second.attempts == 1  # untouched by this replay
