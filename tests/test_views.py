from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from django.db import connection, connections
from django.urls import reverse

from eduzz_webhooks import signals
from eduzz_webhooks.models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from eduzz_webhooks.signature import sign
from eduzz_webhooks.testing import encode, post_event, sample_payload

pytestmark = pytest.mark.django_db
URL = "/eduzz/"
ALL_MODELS = (WebhookEvent, FileDownload, Course, Lesson, Learner, Producer)


def nothing_stored() -> bool:
    return not any(model.objects.exists() for model in ALL_MODELS)


def test_url_is_named_webhook_in_the_app_namespace():
    assert reverse("eduzz_webhooks:webhook") == URL


# -- 1. body limit ----------------------------------------------------------------


def test_body_over_the_limit_is_413_before_anything_else(client, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "MAX_BODY_SIZE": 100}
    body = encode(sample_payload("nutror.file_downloaded"))
    response = post_event(client, body)
    assert response.status_code == 413
    assert "MAX_BODY_SIZE" in response.json()["detail"]
    assert nothing_stored()


def test_body_at_the_limit_is_accepted(deliver, settings):
    body = encode(sample_payload("nutror.file_downloaded"))
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "MAX_BODY_SIZE": len(body)}
    assert deliver(body).status_code == 200


# -- 2. signatures -------------------------------------------------------------


def test_missing_signature_is_401_and_stores_nothing(client):
    body = encode(sample_payload("nutror.file_downloaded"))
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"detail": "The x-signature header is missing."}
    assert nothing_stored()


def test_wrong_signature_is_401_and_stores_nothing(client):
    response = post_event(client, sample_payload("nutror.file_downloaded"), secret="not-the-key")
    assert response.status_code == 401
    assert response.json() == {"detail": "The x-signature header does not match the body."}
    assert nothing_stored()


def test_signature_over_other_bytes_of_the_same_json_is_refused(client):
    payload = sample_payload("nutror.file_downloaded")
    compact = encode(payload)
    spaced = compact.replace(b",", b", ")
    response = client.post(
        URL,
        spaced,
        content_type="application/json",
        headers={"x-signature": sign("test-secret-0123456789abcdef", compact)},
    )
    assert response.status_code == 401


def test_every_configured_secret_is_accepted(deliver):
    response = deliver(
        sample_payload("nutror.file_downloaded"), secret="rotated-secret-fedcba9876543210"
    )
    assert response.status_code == 200


def test_empty_secrets_never_switch_verification_off(client, settings):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": []}
    body = encode(sample_payload("nutror.file_downloaded"))
    for headers in ({}, {"x-signature": sign("", body)}):
        response = client.post(URL, body, content_type="application/json", headers=headers)
        assert response.status_code == 401
    assert nothing_stored()


def test_verification_can_be_switched_off_explicitly(
    client, settings, django_capture_on_commit_callbacks
):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": [], "VERIFY_SIGNATURE": False}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL, encode(sample_payload("nutror.file_downloaded")), content_type="application/json"
        )
    assert response.status_code == 200
    assert FileDownload.objects.count() == 1


# -- 3. envelope ---------------------------------------------------------------------


def body_id(body):
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("body", "detail", "event_id", "event_type", "kept"),
    [
        (b"\xff\xfe{}", "The body is not valid UTF-8.", None, "", "\\xff\\xfe{}"),
        (b"{not json", "The body is not valid JSON.", None, "", "{not json"),
        (b"null", "The body must be a JSON object.", None, "", "null"),
        (b"[1, 2]", "The body must be a JSON object.", None, "", [1, 2]),
        (b"[" * 40 + b"]" * 40, "The JSON is nested too deeply.", None, "", "[" * 40 + "]" * 40),
        (
            b'{"event": "alpaclass.student_module_finished"}',
            "The field 'id' must be a non-empty string.",
            None,
            "alpaclass.student_module_finished",
            {"event": "alpaclass.student_module_finished"},
        ),
        (
            b'{"id": "  ", "event": "x.y"}',
            "The field 'id' must be a non-empty string.",
            None,
            "x.y",
            {"id": "  ", "event": "x.y"},
        ),
        (
            b'{"id": "abc", "event": 5}',
            "The field 'event' must be a non-empty string.",
            "abc",
            "",
            {"id": "abc", "event": 5},
        ),
        (
            b'{"id": "abc"}',
            "The field 'event' must be a non-empty string.",
            "abc",
            "",
            {"id": "abc"},
        ),
    ],
)
def test_a_signed_body_that_is_not_a_usable_envelope_is_kept_as_failed(
    deliver, signal_log, body, detail, event_id, event_type, kept
):
    response = deliver(body)
    event_id = event_id or body_id(body)
    assert response.status_code == 200
    assert response.json() == {"detail": detail, "id": event_id, "status": "failed"}
    event = WebhookEvent.objects.get()
    assert (event.event_id, event.event_type, event.status) == (event_id, event_type, "failed")
    assert event.error == detail
    assert event.payload == kept
    assert FileDownload.objects.count() == 0
    assert signal_log.calls == []


def test_the_same_unusable_body_again_is_a_duplicate(deliver):
    body = b'{"event": "nutror.file_downloaded", "data": {}}'
    deliver(body)
    response = deliver(body)
    assert response.json()["status"] == "duplicate"
    assert WebhookEvent.objects.get().attempts == 1


def test_a_numeric_id_is_kept_as_its_text_and_processed(deliver, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    payload["id"] = 12
    response = deliver(payload)
    assert response.json() == {"detail": "Event received.", "id": "12", "status": "processed"}
    assert WebhookEvent.objects.get(event_id="12").status == "processed"
    assert FileDownload.objects.count() == 1


def test_an_unusable_body_still_needs_its_signature(client):
    response = client.post(URL, b"{not json", content_type="application/json")
    assert response.status_code == 401
    assert nothing_stored()


def nested(levels: int, opener: str) -> bytes:
    """An envelope whose JSON depth is ``levels``: itself, containers, the innermost value."""
    closer = "]" if opener == "[" else "}"
    inner = opener * (levels - 2) + "1" + closer * (levels - 2)
    return f'{{"id":"deep-{levels}","event":"x.nested","data":{inner}}}'.encode()


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_json_32_levels_deep_is_stored_and_deeper_is_kept_as_failed(client, opener):
    # 32, as JSON_DEPTH counts: the most MariaDB's JSON check accepts.
    assert post_event(client, nested(32, opener)).status_code == 200
    assert WebhookEvent.objects.get().payload == json.loads(nested(32, opener))
    response = post_event(client, nested(33, opener))
    assert response.status_code == 200
    assert response.json() == {
        "detail": "The JSON is nested too deeply.",
        "id": "deep-33",
        "status": "failed",
    }
    assert WebhookEvent.objects.get(event_id="deep-33").payload == nested(33, opener).decode()


def test_only_post_is_allowed(client):
    for method in ("get", "put", "patch", "delete"):
        response = getattr(client, method)(URL)
        assert response.status_code == 405
        assert "detail" in response.json()


# -- 4. ping ---------------------------------------------------------------------------


def test_ping_answers_200_and_creates_nothing(deliver, signal_log):
    response = deliver({"id": "ping-1", "event": "ping", "data": {}, "sentDate": None})
    assert response.status_code == 200
    assert nothing_stored()
    assert signal_log.calls == []


# -- 5. storage ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_authentic_event_is_stored_with_its_envelope(deliver):
    payload = sample_payload("nutror.file_downloaded")
    response = deliver(payload)
    assert response.status_code == 200
    assert response.json() == {
        "detail": "Event received.",
        "id": payload["id"],
        "status": "processed",
    }
    event = WebhookEvent.objects.get()
    assert event.event_id == payload["id"]
    assert event.event_type == "nutror.file_downloaded"
    assert event.payload == payload
    assert event.sent_at == dt.datetime(2024, 2, 29, 14, 33, 3, 663000, tzinfo=dt.UTC)
    assert event.received_at is not None
    assert event.processed_at is not None
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.error == ""
    assert event.attempts == 1


# -- 6. duplicates -------------------------------------------------------------------


def test_duplicate_answers_200_creates_and_fires_nothing(deliver, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    deliver(payload)
    response = deliver(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert FileDownload.objects.count() == 1
    assert len(signal_log.of(signals.file_downloaded)) == 1
    assert len(signal_log.of(signals.event_received)) == 1
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.django_db(transaction=True)
def test_redelivery_of_a_failed_event_processes_it_again(deliver, signal_log, connect):
    payload = sample_payload("nutror.file_downloaded")
    calls = []

    def flaky(sender, **kwargs):
        calls.append(kwargs["download"].pk)
        if len(calls) == 1:
            raise RuntimeError("CRM down")

    connect(signals.file_downloaded, flaky)
    deliver(payload)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FAILED

    response = deliver(payload)
    assert response.json()["status"] == "processed"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.error == ""
    assert event.attempts == 2
    assert FileDownload.objects.count() == 1
    assert calls[0] == calls[1]  # the same download row, announced again
    assert len(signal_log.of(signals.file_downloaded)) == 2


# -- 7. records --------------------------------------------------------------------------


def test_file_downloaded_becomes_linked_records(deliver):
    payload = sample_payload("nutror.file_downloaded")
    deliver(payload)
    download = FileDownload.objects.select_related(
        "event", "learner", "course", "lesson", "producer"
    ).get()
    assert download.event.event_id == payload["id"]
    assert download.learner.email == "learner@eduzz.com"
    assert download.learner.name == "Ciclano da Silva"
    assert download.course.hash == "4bba1d18c02755a13ee97521ae61958c3cf9e665"
    assert download.course.title == "Título do Curso"
    assert download.course.producer == download.producer
    assert download.lesson.external_id == "3865"
    assert download.lesson.title == "Título da Aula"
    assert download.lesson.course == download.course
    assert download.producer.email == "fulano@eduzz.com"
    assert download.producer.name == "Fulano da Silva"
    assert download.downloaded_at == dt.datetime(2023, 9, 25, 19, 4, 9, tzinfo=dt.UTC)


def test_known_entities_are_reused_and_renamed(deliver):
    deliver(sample_payload("nutror.file_downloaded"))
    newer = sample_payload(
        "nutror.file_downloaded",
        learner={"email": "LEARNER@eduzz.com", "name": "Ciclano Renomeado"},
        course={"hash": "4bba1d18c02755a13ee97521ae61958c3cf9e665", "title": "Novo Título"},
        lesson={"id": "3865", "title": "Aula Nova"},
        producer={"email": "fulano@eduzz.com", "name": "Fulano", "eduzzId": 777},
    )
    deliver(newer)
    assert FileDownload.objects.count() == 2
    assert Learner.objects.get().name == "Ciclano Renomeado"
    assert Course.objects.get().title == "Novo Título"
    assert Lesson.objects.get().title == "Aula Nova"
    producer = Producer.objects.get()
    assert (producer.name, producer.eduzz_id) == ("Fulano", "777")


def test_absent_eduzz_id_keeps_the_known_one(deliver):
    producer = {"email": "fulano@eduzz.com", "name": "Fulano", "eduzzId": "42"}
    deliver(sample_payload("nutror.file_downloaded", producer=producer))
    deliver(sample_payload("nutror.file_downloaded"))
    assert Producer.objects.get().eduzz_id == "42"


def test_courses_list_and_naive_created_at(deliver):
    payload = sample_payload(
        "nutror.file_downloaded",
        courses=[{"hash": "listed", "title": "Listed"}],
        createdAt="2023-09-06 17:32:14",
    )
    del payload["data"]["course"]
    deliver(payload)
    download = FileDownload.objects.get()
    assert download.course.hash == "listed"
    assert download.downloaded_at == dt.datetime(2023, 9, 6, 20, 32, 14, tzinfo=dt.UTC)


def test_same_lesson_id_in_two_courses_is_two_lessons(deliver):
    for course in ("c1", "c2"):
        deliver(sample_payload("nutror.file_downloaded", course={"hash": course, "title": course}))
    assert Lesson.objects.count() == 2


# -- 8. signals ---------------------------------------------------------------------------


def test_signals_sent_once_with_their_records(deliver, signal_log):
    payload = sample_payload("nutror.file_downloaded")
    deliver(payload)
    (downloaded,) = signal_log.of(signals.file_downloaded)
    (received,) = signal_log.of(signals.event_received)
    assert downloaded["download"] == FileDownload.objects.get()
    assert downloaded["event"].event_id == payload["id"]
    assert received["event"].event_id == payload["id"]


def test_signals_wait_for_the_commit(client, signal_log, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_event(client, sample_payload("nutror.file_downloaded"))
        assert signal_log.calls == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(signal_log.calls) == 2


@pytest.mark.parametrize("event_type", ["nutror.lesson_watched", "myeduzz.invoice_paid"])
def test_other_event_types_are_stored_and_announced(deliver, signal_log, event_type):
    response = deliver(sample_payload(event_type))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.event_type, event.status) == (event_type, WebhookEvent.Status.PROCESSED)
    assert [c["event"] for c in signal_log.of(signals.event_received)] == [event]
    assert signal_log.of(signals.file_downloaded) == []


def test_unknown_event_type_with_any_data_is_kept(deliver, signal_log):
    payload = {"id": "x-1", "event": "sun.cart_abandoned", "data": [1, "two"]}
    assert deliver(payload).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert len(signal_log.of(signals.event_received)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_fails_the_event_but_not_the_others(deliver, signal_log, connect):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    connect(signals.file_downloaded, broken)
    response = deliver(sample_payload("nutror.file_downloaded"))
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert "broken" in event.error
    assert "ValueError: receiver bug" in event.error
    assert "Traceback" in event.error
    assert FileDownload.objects.count() == 1  # the records stay
    assert len(signal_log.of(signals.file_downloaded)) == 1
    assert len(signal_log.of(signals.event_received)) == 1


# -- 9. unusable data ---------------------------------------------------------------------


def test_unusable_data_is_stored_failed_and_fires_nothing(deliver, signal_log):
    payload = sample_payload("nutror.file_downloaded", learner={"name": "Sem e-mail"})
    response = deliver(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error.startswith("data.learner.email: ")
    assert event.payload == payload
    assert FileDownload.objects.count() == 0
    assert Learner.objects.count() == 0
    assert signal_log.calls == []


# -- 10. database unavailable -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_unavailable_is_503_json(client):
    original = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/eduzz.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"
    try:
        response = post_event(client, sample_payload("nutror.file_downloaded"))
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The database is unavailable; please retry later."}
    assert nothing_stored()


def test_atomic_requests_still_commit_before_signals(deliver, settings, signal_log):
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    try:
        deliver(sample_payload("nutror.file_downloaded"))
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert len(signal_log.of(signals.file_downloaded)) == 1


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_atomic_requests_of_the_apps_own_database_still_commit_before_signals(
    own_database, client, monkeypatch, signal_log
):
    monkeypatch.setitem(connections["events"].settings_dict, "ATOMIC_REQUESTS", True)
    response = post_event(client, sample_payload("nutror.file_downloaded"))
    assert response.json()["status"] == "processed"
    assert len(signal_log.of(signals.file_downloaded)) == 1


# -- found by tests/test_fuzz.py -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sent_date_out_of_the_storable_range_is_stored_as_none(deliver):
    payload = sample_payload("nutror.file_downloaded")
    payload["sentDate"] = "9999-12-31 23:59:59"  # year 10000 in UTC: was a 500
    response = deliver(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert WebhookEvent.objects.get().sent_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+14:00",  # was stored on PostgreSQL, unreadable after
        "0001-01-01T00:00Z",  # was stored; every page showing it in UTC-3 answered 500
        "9999-12-31T23:59Z",
        "0001-01-02T00:00Z",  # was stored; its list filtered by year answered 500 in UTC+14
        "9999-12-30T23:59Z",  # was stored; its list filtered by year answered 500 in any zone
        "2023-09-25T19:04:09+23:59",  # was a raw DataError traceback on PostgreSQL
    ],
)
def test_created_at_not_every_time_zone_can_show_fails_the_event_naming_it(deliver, created_at):
    payload = sample_payload("nutror.file_downloaded", createdAt=created_at)
    response = deliver(payload)
    assert response.json()["status"] == "failed"
    assert WebhookEvent.objects.get().error.startswith("data.createdAt: Must be a date-time")
    assert FileDownload.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sent_date", ["0001-01-01T00:00Z", "9999-12-30T23:59Z", "2023-09-25T19:04:09+23:59"]
)
def test_a_sent_date_not_every_time_zone_can_show_is_taken_as_absent(deliver, sent_date):
    payload = {**sample_payload("nutror.file_downloaded"), "sentDate": sent_date}
    assert deliver(payload).json()["status"] == "processed"
    assert WebhookEvent.objects.get().sent_at is None


@pytest.mark.django_db(transaction=True)
def test_email_too_long_once_lowercased_fails_the_event_naming_the_field(deliver):
    # Was a database error on PostgreSQL (stored as a traceback), a 255-character row on SQLite.
    learner = {"email": "\u0130" * 125 + "@x.co", "name": "x"}
    response = deliver(sample_payload("nutror.file_downloaded", learner=learner))
    assert response.json()["status"] == "failed"
    assert WebhookEvent.objects.get().error.startswith("data.learner.email: ")
    assert Learner.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "extra",
    [
        {"headers": {"accept": "text/html"}},  # was 406
        {"headers": {"accept": "application/xml"}},  # was 406
        {"QUERY_STRING": "format=xml"},  # was a 500 (DRF's format override raised Http404)
    ],
)
def test_accept_header_and_format_query_never_refuse_an_event(deliver, extra):
    response = deliver(sample_payload("nutror.file_downloaded"), **extra)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == "processed"
    assert FileDownload.objects.count() == 1


def test_options_is_refused_like_every_method_but_post(client):
    response = client.options(URL)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "OPTIONS" not allowed.'}
