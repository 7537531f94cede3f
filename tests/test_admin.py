"""The ModelAdmins (admin.py, base.py): read-only screens, their lists and pages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks.admin.admin import CourseAdmin, LearnerAdmin
from eduzz_webhooks.models import WebhookEvent
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    WebhookEventFactory,
)
from tests.conftest import date_choices

pytestmark = pytest.mark.django_db

MODELS = ["filedownload", "course", "lesson", "learner", "producer", "webhookevent"]
INSIGHT = "admin:eduzz_webhooks_filedownload_insight"
EXPORT = "admin:eduzz_webhooks_filedownload_export"
DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"


def changelist(model):
    return reverse(f"admin:eduzz_webhooks_{model}_changelist")


def query_count(client, url):
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return len(queries)


def login(client, *codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="eduzz_webhooks", codename__in=codenames)
    )
    client.force_login(user)
    return client


# -- permissions: read-only, view permission per screen -----------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_opens_for_view_permission(viewer, model):
    FileDownloadFactory.create_batch(3)
    response = viewer.get(changelist(model))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_staff_without_view_permission_is_refused(client, model):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(changelist(model)).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_add_change_and_delete_permissions_open_no_screen(client, model):
    # Django lets the change permission view; here it allows nothing, so it must not.
    FileDownloadFactory()
    login(client, *(f"{action}_{m}" for action in ("add", "change", "delete") for m in MODELS))
    assert client.get(changelist(model)).status_code == 403
    obj = apps.get_model("eduzz_webhooks", model).objects.first()
    change = reverse(f"admin:eduzz_webhooks_{model}_change", args=[obj.pk])
    assert client.get(change).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_nothing_can_be_added_changed_or_deleted(admin_client, model):
    FileDownloadFactory()
    assert admin_client.get(reverse(f"admin:eduzz_webhooks_{model}_add")).status_code == 403
    obj = apps.get_model("eduzz_webhooks", model).objects.first()
    change = reverse(f"admin:eduzz_webhooks_{model}_change", args=[obj.pk])
    response = admin_client.post(change, {})
    assert response.status_code == 403
    delete = reverse(f"admin:eduzz_webhooks_{model}_delete", args=[obj.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


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


@pytest.mark.parametrize(
    "codenames", [[], [f"change_{model}" for model in MODELS]], ids=["none", "change"]
)
def test_pages_refused_without_view_permission(client, codenames):
    login(client, *codenames)
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


# -- downloads, courses, learners: lists and pages ------------------------------------------


def test_downloads_search_by_learner_email_and_filter_by_course(viewer):
    mine = FileDownloadFactory(learner=LearnerFactory(email="ana@example.com", name="Ana"))
    other = FileDownloadFactory()
    response = viewer.get(changelist("filedownload"), {"q": "ana@example"})
    assert list(response.context["cl"].result_list) == [mine]
    response = viewer.get(changelist("filedownload"), {"course__id__exact": other.course_id})
    assert list(response.context["cl"].result_list) == [other]
    response = viewer.get(changelist("filedownload"), {"q": other.lesson.title})
    assert list(response.context["cl"].result_list) == [other]


def test_lists_filter_by_date_with_djangos_date_filter(viewer, settings):
    settings.TIME_ZONE = "America/Sao_Paulo"
    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    downloads = [
        FileDownloadFactory(downloaded_at=when, event__received_at=when)
        for when in (noon, noon - dt.timedelta(days=3), noon - dt.timedelta(days=400))
    ]
    for model, field, rows in [
        ("filedownload", "downloaded_at", downloads),
        ("webhookevent", "received_at", [d.event for d in downloads]),
    ]:
        today, last_week, long_ago = rows
        response = viewer.get(changelist(model))
        assert 'class="toplinks"' not in response.content.decode()  # no date hierarchy
        assert set(response.context["cl"].result_list) == set(rows)
        for title, query in date_choices(response, field).items():
            listed = set(viewer.get(changelist(model), query).context["cl"].result_list)
            if title == "Today":
                assert listed == {today}, title
            elif title == "Past 7 days":
                assert listed == {today, last_week}, title
            else:  # this month, this year: today's, maybe the other recent one, not the old one
                assert today in listed, title
                assert long_ago not in listed, title


def test_counts_of_downloads(viewer):
    download = FileDownloadFactory()
    FileDownloadFactory(learner=download.learner, lesson=download.lesson)
    response = viewer.get(changelist("learner"))
    (learner,) = response.context["cl"].result_list
    assert learner.download_count == 2
    response = viewer.get(changelist("course"))
    assert [c.download_count for c in response.context["cl"].result_list] == [2]
    CourseFactory(title="zzz quiet")  # no downloads: 0, not empty
    response = viewer.get(changelist("course"))
    assert [c.download_count for c in response.context["cl"].result_list] == [2, 0]


def test_downloads_list_links_to_insight_and_export(viewer):
    FileDownloadFactory.create_batch(2)
    response = viewer.get(reverse(DOWNLOADS), {"q": "x@y", "p": "0", "o": "1"})
    content = response.content.decode()
    assert f'href="{reverse(INSIGHT)}"' in content
    # The export carries filters, search and ordering, but not the page.
    assert f'href="{reverse(EXPORT)}?q=x%40y&amp;o=1"' in content


def test_learner_page_shows_the_latest_downloads(viewer, monkeypatch):
    monkeypatch.setattr(LearnerAdmin, "history_rows", 3)
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
    few = query_count(viewer, url)
    FileDownloadFactory.create_batch(20, learner=learner)
    assert query_count(viewer, url) == few


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

    monkeypatch.setattr(CourseAdmin, "lesson_rows", 1)
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
    few = query_count(viewer, url)
    for lesson in LessonFactory.create_batch(10, course=course):
        FileDownloadFactory.create_batch(2, lesson=lesson)
    assert query_count(viewer, url) == few


# -- webhook events ---------------------------------------------------------------------


def test_event_page_shows_pretty_payload_and_error(viewer):
    event = WebhookEventFactory(
        payload={"id": "e1", "event": "x", "data": {"nome": "João"}},
        status=WebhookEvent.Status.FAILED,
        error="data.learner.email: This field is required.",
    )
    response = viewer.get(reverse("admin:eduzz_webhooks_webhookevent_change", args=[event.pk]))
    content = response.content.decode()
    assert "&quot;nome&quot;: &quot;João&quot;" in content
    assert "data.learner.email: This field is required." in content


def test_events_filter_by_status_and_search_by_id(viewer):
    failed = WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    WebhookEventFactory()
    response = viewer.get(changelist("webhookevent"), {"status__exact": "failed"})
    assert list(response.context["cl"].result_list) == [failed]
    response = viewer.get(changelist("webhookevent"), {"q": failed.event_id})
    assert list(response.context["cl"].result_list) == [failed]


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


def test_lists_show_dates_compactly_in_the_sites_time_zone(viewer, settings):
    # A laptop's list has no room for "March 2, 2024, 11:30 p.m.": the short date, then
    # the time, each on one line, so a narrow column wraps between them only.
    settings.TIME_ZONE = "America/Sao_Paulo"
    when = dt.datetime(2024, 3, 3, 2, 30, tzinfo=dt.UTC)  # 23:30 on the 2nd there
    WebhookEventFactory(received_at=when, sent_at=None)
    FileDownloadFactory(downloaded_at=when)
    compact = '<span class="nowrap">03/02/2024</span> <span class="nowrap">11:30 p.m.</span>'
    for model in ("webhookevent", "filedownload"):
        content = viewer.get(changelist(model)).content.decode()
        assert compact in content, model
        assert "eduzz_webhooks/changelist.css" in content  # long titles and values wrap
    ordered = viewer.get(changelist("webhookevent"), {"o": "5"}).context["cl"]
    assert ordered.get_ordering_field_columns() == {5: "asc"}  # still sortable by date


def test_event_list_keeps_each_status_on_one_line(viewer):
    WebhookEventFactory(status=WebhookEvent.Status.FAILED, event_type="nutror.file_downloaded")
    content = viewer.get(changelist("webhookevent")).content.decode()
    assert '<span class="eduzz-status"><img src="/static/admin/img/icon-no.svg"' in content
    assert "nutror.<wbr>file_downloaded" in content  # the type may break after its dot
