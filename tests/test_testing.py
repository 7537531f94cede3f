"""The helpers for host projects' tests: factories, signed requests, signal capture, the plugin."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import json
import re
import textwrap
from pathlib import Path

import pytest
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from eduzz_webhooks import processing, signals
from eduzz_webhooks.exceptions import InvalidEventData
from eduzz_webhooks.models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from eduzz_webhooks.payloads import parse_datetime, parse_envelope, parse_file_downloaded
from eduzz_webhooks.signature import sign
from eduzz_webhooks.testing import (
    OMIT,
    SAMPLE_EVENTS,
    FileDownloadedPayloadFactory,
    FileDownloadFactory,
    LearnerFactory,
    WebhookEventFactory,
    build_payload,
    capture,
    encode,
    format_datetime,
    immediate_on_commit,
    post_event,
    sample_payload,
    signed_request,
)
from eduzz_webhooks.views import WebhookView

ROOT = Path(__file__).resolve().parent.parent
NUTROR_AND_INVOICE = [t for t in SAMPLE_EVENTS if t != "ping"]
DATE_PATTERNS = {
    "utc": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
    "utc_ms": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
    "naive": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
}


def shape(value):
    """The structure of a JSON value: keys, nesting and scalar types."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def date_style(text):
    return next(style for style, pattern in DATE_PATTERNS.items() if re.fullmatch(pattern, text))


# -- payloads ------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", SAMPLE_EVENTS)
def test_payloads_have_the_documented_shape_and_date_formats(event_type):
    sample = sample_payload(event_type)
    payload = build_payload(event_type)
    assert payload["event"] == event_type
    assert shape(payload) == shape(sample)
    assert date_style(payload["sentDate"]) == "utc_ms"
    if "createdAt" in sample["data"]:
        # Each event's dates come in the form its documented sample uses.
        assert date_style(payload["data"]["createdAt"]) == date_style(sample["data"]["createdAt"])


@pytest.mark.parametrize("event_type", SAMPLE_EVENTS)
def test_payloads_are_valid_envelopes_with_a_new_id_each_time(event_type):
    first, second = build_payload(event_type), build_payload(event_type)
    envelope = parse_envelope(encode(first))
    assert (envelope.event_type, envelope.event_id) == (event_type, first["id"])
    assert first["id"] != second["id"]
    assert envelope.sent_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", NUTROR_AND_INVOICE)
def test_every_payload_is_stored_and_processed_by_the_webhook(
    event_type, eduzz_post, eduzz_signals
):
    payload = build_payload(event_type)
    response = eduzz_post(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    event = WebhookEvent.objects.get(event_id=payload["id"])
    assert (event.event_type, event.payload) == (event_type, payload)
    assert eduzz_signals.events == [event]


@pytest.mark.django_db
def test_a_ping_payload_is_answered(eduzz_post):
    response = eduzz_post(build_payload("ping"))
    assert (response.status_code, response.json()) == (200, {"detail": "pong"})


def test_other_types_are_their_sample_with_a_new_id_sent_now():
    sample = sample_payload("nutror.lesson_watched")
    payload = build_payload("nutror.lesson_watched")
    assert payload["data"] == sample["data"]
    assert payload["id"] != sample["id"]
    assert parse_datetime(payload["sentDate"]) > timezone.now() - dt.timedelta(minutes=1)


def test_overrides_set_replace_and_omit_nested_keys_of_a_sample():
    payload = build_payload(
        "myeduzz.invoice_paid",
        id="invoice-1",
        data__buyer__email="ana@example.com",
        data__buyer__name=OMIT,
        data__items__1=OMIT,
        data__items__0__price__value=47.0,
        data__coupon="BEMVINDO",  # a key of the test's own
    )
    sample = sample_payload("myeduzz.invoice_paid")["data"]
    assert payload["id"] == "invoice-1"
    assert payload["data"]["buyer"] == {"email": "ana@example.com"}
    (item,) = payload["data"]["items"]
    assert item == {**sample["items"][0], "price": {"currency": "BRL", "value": 47.0}}
    assert payload["data"]["coupon"] == "BEMVINDO"
    assert payload["data"]["producer"] == sample["producer"]


def test_file_downloaded_data_parses_to_the_given_values():
    when = dt.datetime(2024, 3, 1, 12, 30, 15, tzinfo=dt.UTC)
    payload = FileDownloadedPayloadFactory(
        data__learner__email="ana@example.com",
        data__learner__name="Ana Souza",
        data__lesson__id="42",
        data__created_at=when,
    )
    data = parse_file_downloaded(payload["data"])
    assert (data.learner_email, data.learner_name) == ("ana@example.com", "Ana Souza")
    assert data.lesson_id == "42"
    assert data.downloaded_at == when
    assert data.producer_eduzz_id == ""
    with_id = FileDownloadedPayloadFactory(data__producer__eduzzId=1200001)  # a new key
    assert parse_file_downloaded(with_id["data"]).producer_eduzz_id == "1200001"


def test_values_are_varied_and_emails_unique():
    payloads = FileDownloadedPayloadFactory.build_batch(20)
    learners = [p["data"]["learner"] for p in payloads]
    assert len({learner["email"] for learner in learners}) == 20
    assert len({learner["name"] for learner in learners}) > 1
    assert len({p["data"]["course"]["hash"] for p in payloads}) == 20
    for learner in learners:
        assert re.fullmatch(r"[a-z0-9.]+@example\.com", learner["email"])


def test_omit_removes_a_key_and_makes_the_event_unusable():
    payload = FileDownloadedPayloadFactory(data__lesson=OMIT, data__learner__name=OMIT)
    assert "lesson" not in payload["data"]
    assert payload["data"]["learner"].keys() == {"email"}
    with pytest.raises(InvalidEventData, match=r"data\.lesson"):
        parse_file_downloaded(payload["data"])


def test_courses_list_trait_sends_the_other_documented_form():
    payload = FileDownloadedPayloadFactory(data__courses_list=True)
    assert "course" not in payload["data"]
    (course,) = payload["data"]["courses"]
    assert parse_file_downloaded(payload["data"]).course_hash == course["hash"]


@pytest.mark.parametrize("style", ["utc", "utc_ms", "naive"])
def test_format_datetime_reads_back_as_the_same_instant(style, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "NAIVE_DATETIME_TIMEZONE": "Asia/Tokyo"}
    when = dt.datetime(2024, 3, 1, 23, 30, 15, 123000, tzinfo=dt.UTC)
    text = format_datetime(when, style)
    assert date_style(text) == style
    precision = when if style == "utc_ms" else when.replace(microsecond=0)
    assert parse_datetime(text) == precision
    if style == "naive":
        assert text == "2024-03-02 08:30:15"  # Tokyo is UTC+9


def test_format_datetime_refuses_naive_values_and_unknown_styles():
    with pytest.raises(ValueError, match="aware"):
        format_datetime(dt.datetime(2024, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="Unknown date-time style"):
        format_datetime(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "iso")


def test_a_type_without_a_sample_gets_a_bare_envelope():
    bare = build_payload("sun.cart_abandoned")
    assert bare.keys() == {"id", "event", "data", "sentDate"}
    assert (bare["event"], bare["data"]) == ("sun.cart_abandoned", {})
    assert parse_envelope(encode(bare)).event_type == "sun.cart_abandoned"
    assert build_payload("sun.cart_abandoned", data={"cart": {"id": "1"}})["data"] == {
        "cart": {"id": "1"}
    }
    assert build_payload("sun.cart_abandoned", data__cart__id="1")["data"] == {"cart": {"id": "1"}}


# -- model factories -------------------------------------------------------------------


@pytest.mark.django_db
def test_file_download_factory_builds_linked_rows():
    ana = LearnerFactory(email="ana@example.com", name="Ana Souza")
    downloads = FileDownloadFactory.create_batch(3, learner=ana)
    assert Learner.objects.count() == 1
    assert FileDownload.objects.filter(learner=ana).count() == 3
    for download in downloads:
        assert download.course == download.lesson.course
        assert download.producer == download.course.producer
        assert download.event.status == WebhookEvent.Status.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_a_factory_download_replays_into_the_same_rows():
    download = FileDownloadFactory()
    counts = [m.objects.count() for m in (Producer, Course, Lesson, Learner, FileDownload)]
    result = processing.process(download.event)
    assert result.outcome is processing.Outcome.PROCESSED
    assert [m.objects.count() for m in (Producer, Course, Lesson, Learner, FileDownload)] == counts
    replayed = FileDownload.objects.get()
    assert (replayed.learner, replayed.lesson, replayed.producer) == (
        download.learner,
        download.lesson,
        download.producer,
    )
    assert replayed.downloaded_at == download.downloaded_at


@pytest.mark.django_db
def test_webhook_event_factory_payload_matches_its_type_and_id():
    event = WebhookEventFactory(event_type="nutror.lesson_watched")
    envelope = parse_envelope(encode(event.payload))
    assert (envelope.event_type, envelope.event_id) == ("nutror.lesson_watched", event.event_id)
    assert event.sent_at == envelope.sent_at
    failed = WebhookEventFactory(status=WebhookEvent.Status.FAILED)
    assert failed.processed_at is None


# -- signed requests ---------------------------------------------------------------------


@pytest.mark.django_db
def test_signed_request_is_accepted_by_the_real_view():
    payload = FileDownloadedPayloadFactory()
    with capture() as sent, immediate_on_commit():
        response = WebhookView.as_view()(signed_request(payload))
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "processed"
    assert [event.event_id for event in sent.events] == [payload["id"]]


@pytest.mark.django_db
def test_signed_request_with_another_configured_key_or_a_wrong_one():
    view = WebhookView.as_view()
    rotated = signed_request(
        FileDownloadedPayloadFactory(), secret="rotated-secret-fedcba9876543210"
    )
    assert view(rotated).status_code == 200
    assert (
        view(signed_request(FileDownloadedPayloadFactory(), secret="not-the-key")).status_code
        == 401
    )


@pytest.mark.django_db
def test_signed_request_signature_covers_the_exact_body():
    body = encode(FileDownloadedPayloadFactory())
    request = signed_request(body)
    assert request.headers["x-signature"] == sign("test-secret-0123456789abcdef", body)
    assert request.body == body
    tampered = signed_request(
        body + b" ", headers={"x-signature": sign("test-secret-0123456789abcdef", body)}
    )
    assert WebhookView.as_view()(tampered).status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_without_keys_and_with_verification_off_a_post_goes_unsigned(eduzz_post, settings):
    # What check's E001 advises for local development: no key to sign with, none needed.
    settings.EDUZZ_WEBHOOKS = {"VERIFY_SIGNATURE": False}
    response = eduzz_post(FileDownloadedPayloadFactory())
    assert response.json()["status"] == "processed"
    assert "x-signature" not in signed_request(FileDownloadedPayloadFactory()).headers


# -- immediate_on_commit ------------------------------------------------------------------


@pytest.mark.django_db
def test_without_it_the_test_transaction_holds_the_signals_back(client, eduzz_signals):
    response = post_event(client, FileDownloadedPayloadFactory())
    assert response.json()["status"] == "pending"
    assert eduzz_signals.calls == []


@pytest.mark.django_db
def test_it_answers_and_announces_as_in_production(client, eduzz_signals):
    with immediate_on_commit():
        response = post_event(client, FileDownloadedPayloadFactory())
    assert response.json()["status"] == "processed"
    assert len(eduzz_signals.downloads) == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED


@pytest.mark.django_db
def test_callbacks_of_inner_transactions_wait_for_them_and_die_with_a_rollback():
    ran = []
    with immediate_on_commit():
        transaction.on_commit(lambda: ran.append("outside"))
        with transaction.atomic():
            transaction.on_commit(lambda: ran.append("committed"))
            assert ran == ["outside"]
        try:
            with transaction.atomic():
                transaction.on_commit(lambda: ran.append("rolled back"))
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        assert ran == ["outside"]
    assert ran == ["outside", "committed"]


@pytest.mark.django_db
def test_callback_errors_propagate_unless_robust_as_in_django(caplog):
    def broken():
        raise ValueError("callback bug")

    with immediate_on_commit():
        transaction.on_commit(broken, robust=True)  # logged
        with pytest.raises(ValueError, match="callback bug"):
            transaction.on_commit(broken)
    assert "Error calling" in caplog.text
    assert "callback bug" in caplog.text


@pytest.mark.django_db
def test_a_robust_callback_without_a_qualified_name_is_logged(caplog):
    def broken(what):
        raise ValueError(what)

    with immediate_on_commit():
        transaction.on_commit(functools.partial(broken, "partial bug"), robust=True)
    assert "Error calling functools.partial" in caplog.text
    assert "partial bug" in caplog.text


# -- capture ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_capture_records_what_each_signal_sent_in_order(eduzz_post):
    payload = FileDownloadedPayloadFactory()
    with capture() as sent:
        eduzz_post(payload)
    assert [call.signal for call in sent.calls] == [signals.file_downloaded, signals.event_received]
    assert [call.sender for call in sent.calls] == [FileDownload, WebhookEvent]
    (download,) = sent.downloads
    (event,) = sent.events
    assert download.event == event
    assert event.event_id == payload["id"]
    assert sent.of(signals.file_downloaded) == [{"download": download, "event": event}]


@pytest.mark.django_db
def test_capture_disconnects_on_exit(eduzz_post):
    before = [len(s.receivers) for s in (signals.file_downloaded, signals.event_received)]
    with capture() as sent:
        pass
    eduzz_post(FileDownloadedPayloadFactory())
    assert sent.calls == []
    assert [len(s.receivers) for s in (signals.file_downloaded, signals.event_received)] == before


def test_capture_disconnects_everything_even_when_the_block_raises():
    def receivers():
        return [len(s.receivers) for s in (signals.file_downloaded, signals.event_received)]

    def extra(sender, **kwargs):
        raise AssertionError("must not be called")

    before, inside = receivers(), []

    def fail_inside_capture():
        with capture() as sent:
            sent.connect(signals.file_downloaded, extra)
            inside.append(receivers())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_capture()
    assert inside == [[before[0] + 2, before[1] + 1]]
    assert receivers() == before
    signals.file_downloaded.send(sender=FileDownload)  # extra is gone: nothing raises


def test_capture_of_other_signals():
    custom = Signal()
    with capture(custom) as sent:
        custom.send(sender=str, value=1)
        signals.event_received.send(sender=WebhookEvent, event=None)
    assert sent.calls == [(custom, str, {"value": 1})]
    assert sent.of(custom) == [{"value": 1}]
    assert not custom.has_listeners()


# -- the pytest plugin ---------------------------------------------------------------------


@pytest.mark.django_db
def test_plugin_fixtures_post_and_capture_inside_the_test_transaction(
    eduzz_event, eduzz_post, eduzz_signals
):
    payload = eduzz_event("nutror.file_downloaded", data__learner__email="ana@example.com")
    response = eduzz_post(payload)
    assert response.json() == {
        "detail": "Event received.",
        "id": payload["id"],
        "status": "processed",
    }
    (download,) = eduzz_signals.downloads
    assert download.learner.email == "ana@example.com"
    assert eduzz_event("sun.cart_abandoned", data={"x": 1})["data"] == {"x": 1}


@pytest.mark.django_db(databases=["default", "events"])
def test_plugin_post_announces_on_the_apps_own_database(own_database, eduzz_post, eduzz_signals):
    response = eduzz_post(FileDownloadedPayloadFactory())
    assert response.json()["status"] == "processed"
    assert len(eduzz_signals.downloads) == 1


def test_installing_the_app_does_not_load_the_plugin():
    # An entry point in the pytest11 group would add the fixtures to every session.
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert not [ep for ep in plugins if ep.value.startswith("eduzz_webhooks")]


# The host's settings: this project's test settings, plus the app of the guide.
HOST_SETTINGS = """
from tests.settings import *

INSTALLED_APPS = [*INSTALLED_APPS, "shop"]
# The guide's receivers send e-mail: Django 6.1 wants a mailer (earlier versions
# ignore the setting).
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}}
"""


def docs_files(text):
    """The code blocks of docs/testing.rst that have a file name as caption, by file."""
    files: dict[str, str] = {}
    pattern = re.compile(
        r"^\.\. code-block:: python\n   :caption: (\S+)[^\n]*\n\n((?:(?:   [^\n]*)?\n)+)", re.M
    )
    for path, body in pattern.findall(text):
        files[path] = files.get(path, "") + textwrap.dedent(body) + "\n"
    return files


def test_the_testing_guide_examples_pass_in_a_host_project(pytester, monkeypatch, tmp_path):
    """Runs the code of docs/testing.rst as a host project would, in its own pytest session."""
    files = docs_files((ROOT / "docs" / "testing.rst").read_text("utf-8"))
    assert set(files) == {
        "conftest.py",
        "shop/apps.py",
        "shop/receivers.py",
        "shop/tests/test_receivers.py",
        "shop/tests/test_without_pytest.py",
    }
    for path, body in files.items():
        pytester.path.joinpath(path).parent.mkdir(parents=True, exist_ok=True)
        pytester.path.joinpath(path).write_text(body, "utf-8")
    pytester.makepyfile(
        **{
            "shop/__init__": "",
            "shop/tests/__init__": "",
            "host_settings": HOST_SETTINGS,
        }
    )
    pytester.makeini("[pytest]\nfilterwarnings = error\naddopts = -p no:cacheprovider\n")
    # pytest-django exported this session's settings: the host has its own.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "host_settings")
    # Its own SQLite database, whatever this session uses.
    monkeypatch.delenv("EDUZZ_TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("EDUZZ_TEST_SQLITE", str(tmp_path / "host.sqlite3"))
    monkeypatch.setenv("PYTHONPATH", f"{pytester.path}:{ROOT}")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=5)
