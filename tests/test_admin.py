from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.testing import FileDownloadFactory, LearnerFactory, WebhookEventFactory

pytestmark = pytest.mark.django_db

MODELS = ["filedownload", "course", "lesson", "learner", "producer", "webhookevent"]


@pytest.fixture
def staff(client):
    """A staff user with only the view permissions of this app."""
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="eduzz_webhooks", codename__startswith="view_"
        )
    )
    client.force_login(user)
    return client


def changelist(model):
    return reverse(f"admin:eduzz_webhooks_{model}_changelist")


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_opens_for_view_permission(staff, model):
    FileDownloadFactory.create_batch(3)
    response = staff.get(changelist(model))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_staff_without_view_permission_is_refused(client, model):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(changelist(model)).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_nothing_can_be_added_changed_or_deleted(admin_client, model):
    FileDownloadFactory()
    assert admin_client.get(reverse(f"admin:eduzz_webhooks_{model}_add")).status_code == 403
    from django.apps import apps

    obj = apps.get_model("eduzz_webhooks", model).objects.first()
    change = reverse(f"admin:eduzz_webhooks_{model}_change", args=[obj.pk])
    response = admin_client.post(change, {})
    assert response.status_code == 403
    delete = reverse(f"admin:eduzz_webhooks_{model}_delete", args=[obj.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


def test_downloads_search_by_learner_email_and_filter_by_course(staff):
    mine = FileDownloadFactory(learner=LearnerFactory(email="ana@example.com", name="Ana"))
    other = FileDownloadFactory()
    response = staff.get(changelist("filedownload"), {"q": "ana@example"})
    assert list(response.context["cl"].result_list) == [mine]
    response = staff.get(changelist("filedownload"), {"course__id__exact": other.course_id})
    assert list(response.context["cl"].result_list) == [other]
    response = staff.get(changelist("filedownload"), {"q": other.lesson.title})
    assert list(response.context["cl"].result_list) == [other]


def test_download_changelist_queries_do_not_grow_with_rows(staff):
    FileDownloadFactory.create_batch(2)
    with CaptureQueriesContext(connection) as few:
        staff.get(changelist("filedownload"))
    FileDownloadFactory.create_batch(20)
    with CaptureQueriesContext(connection) as many:
        staff.get(changelist("filedownload"))
    assert len(many) == len(few)


def test_counts_of_downloads(staff):
    download = FileDownloadFactory()
    FileDownloadFactory(learner=download.learner, lesson=download.lesson)
    response = staff.get(changelist("learner"))
    (learner,) = response.context["cl"].result_list
    assert learner.download_count == 2
    response = staff.get(changelist("course"))
    assert [c.download_count for c in response.context["cl"].result_list] == [2]


def test_event_page_shows_pretty_payload_and_error(staff):
    event = WebhookEventFactory(
        payload={"id": "e1", "event": "x", "data": {"nome": "João"}},
        status=WebhookEvent.Status.FAILED,
        error="data.learner.email: This field is required.",
    )
    response = staff.get(reverse("admin:eduzz_webhooks_webhookevent_change", args=[event.pk]))
    content = response.content.decode()
    assert "&quot;nome&quot;: &quot;João&quot;" in content
    assert "data.learner.email: This field is required." in content


def test_events_filter_by_status_and_search_by_id(staff):
    failed = WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    WebhookEventFactory()
    response = staff.get(changelist("webhookevent"), {"status__exact": "failed"})
    assert list(response.context["cl"].result_list) == [failed]
    response = staff.get(changelist("webhookevent"), {"q": failed.event_id})
    assert list(response.context["cl"].result_list) == [failed]


def test_replay_action_needs_its_permission(staff):
    event = WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    response = staff.get(changelist("webhookevent"))
    assert "replay" not in dict(
        response.context["cl"].model_admin.get_actions(response.wsgi_request)
    )
    response = staff.post(
        changelist("webhookevent"), {"action": "replay", "_selected_action": [event.pk]}
    )
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_replay_action_processes_and_reports(admin_client):
    from eduzz_webhooks.testing import sample_payload

    payload = sample_payload("nutror.file_downloaded")
    event = WebhookEventFactory(
        event_id=payload["id"], payload=payload, status=WebhookEvent.Status.FAILED
    )
    broken = WebhookEventFactory(
        payload={"id": "b", "event": "nutror.file_downloaded", "data": {}},
        status=WebhookEvent.Status.FAILED,
    )
    response = admin_client.post(
        changelist("webhookevent"),
        {"action": "replay", "_selected_action": [event.pk, broken.pk]},
        follow=True,
    )
    assert [(m.level, str(m)) for m in response.context["messages"]] == [
        (messages.SUCCESS, "Replay of 1 event: processed."),
        (messages.ERROR, "Replay of 1 event: failed."),
    ]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert FileDownload.objects.get().event == event
