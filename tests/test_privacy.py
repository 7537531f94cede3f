from __future__ import annotations

import copy
import datetime as dt
import json
import unicodedata
import uuid
from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import CharField, JSONField, TextField
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks import privacy, processing, signals
from eduzz_webhooks.conf import conf
from eduzz_webhooks.management.commands.eduzz_prune_payloads import Command as PruneCommand
from eduzz_webhooks.models import FileDownload, Learner, Producer, WebhookEvent
from eduzz_webhooks.privacy import erase_learner
from eduzz_webhooks.samples import sample_payload
from eduzz_webhooks.testing import WebhookEventFactory, post_event

pytestmark = pytest.mark.django_db

EMAIL = "zuleica.prado@example.com"
NAME = "Zuleica Prado Privacidade"
OTHER_EMAIL = "outra.pessoa@example.com"
OTHER_NAME = "Outra Pessoa Intocada"


@pytest.fixture
def deliver(client: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Post a signed event through the webhook; its signals run as in production."""

    def deliver(payload: dict[str, Any]) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, payload)
        assert response.status_code == 200
        return payload

    return deliver


def learner_event(event_type: str, email: str, name: str, **data: Any) -> dict[str, Any]:
    return sample_payload(event_type, learner={"email": email, "name": name}, **data)


@pytest.fixture
def person(deliver: Any) -> dict[str, Any]:
    """One person's data in every place the app keeps it, next to another learner's."""
    downloads = [
        deliver(learner_event("nutror.file_downloaded", "Zuleica.Prado@Example.com", NAME)),
        deliver(
            learner_event(
                "nutror.file_downloaded", EMAIL, NAME, lesson={"id": "77", "title": "Aula 77"}
            )
        ),
    ]

    def crm(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        raise ValueError(f"CRM refused {EMAIL.upper()} ({NAME})")

    # A receiver that fails with the person's data: its traceback is stored as the error.
    signals.event_received.connect(crm, weak=False)
    try:
        watched = deliver(learner_event("nutror.lesson_watched", f"  {EMAIL}  ", NAME))
    finally:
        signals.event_received.disconnect(crm)
    invoice = deliver(
        sample_payload("myeduzz.invoice_paid", buyer={"name": NAME, "email": EMAIL.upper()})
    )
    comment = deliver(
        learner_event("nutror.comment_created", EMAIL, NAME, text=f"Falar com {EMAIL}, obrigada")
    )
    # An undocumented event type: the person sits where no key lookup looks.
    cart = deliver(
        {
            "id": "cart-1",
            "event": "sun.cart_abandoned",
            "sentDate": "2024-03-01T10:00:00.000Z",
            "data": {
                "cartId": "c1",
                "customer": {"email": EMAIL, "name": NAME, "phone": "+55 11 90000-0000"},
                "items": [{"sku": "X", "qty": 1}],
            },
        }
    )
    others = [
        deliver(learner_event("nutror.file_downloaded", OTHER_EMAIL, OTHER_NAME)),
        deliver(learner_event("nutror.lesson_watched", OTHER_EMAIL, OTHER_NAME)),
    ]
    return {
        "downloads": downloads,
        "watched": watched,
        "invoice": invoice,
        "comment": comment,
        "cart": cart,
        "others": others,
    }


def database_text() -> str:
    """Every text and JSON value of every table of the app, lowercased, in Unicode NFC."""
    parts = []
    for model in apps.get_app_config("eduzz_webhooks").get_models():
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, (CharField, TextField, JSONField))
        ]
        if not fields:
            continue
        for row in model.objects.values_list(*fields):
            parts += [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in row]
    return unicodedata.normalize("NFC", "\n".join(parts).lower())


def stored(payload: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent.objects.get(event_id=payload["id"])


def snapshot() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for model in (WebhookEvent, Learner, Producer, FileDownload):
        rows += [tuple(r.values()) for r in model.objects.order_by("pk").values()]
    return rows


# -- erase_learner -----------------------------------------------------------------------------


def test_erase_anonymises_the_learner_and_keeps_downloads_and_counts(person):
    learner = Learner.objects.get(email=EMAIL)
    event_types = Counter(WebhookEvent.objects.values_list("event_type", "status", "sent_at"))
    download_count = FileDownload.objects.count()

    report = erase_learner(EMAIL)

    anonymous = f"erased-{learner.pk}@invalid"
    assert report.found
    assert (report.learners, report.downloads, report.producers, report.payloads) == (1, 2, 0, 6)
    assert report.anonymous_email == anonymous
    learner.refresh_from_db()
    assert (learner.email, learner.name) == (anonymous, "")
    assert learner.downloads.count() == 2
    assert FileDownload.objects.count() == download_count
    assert (
        Counter(WebhookEvent.objects.values_list("event_type", "status", "sent_at")) == event_types
    )
    assert anonymous in str(report)


def test_erase_scrubs_every_payload_keeping_the_rest(person):
    report = erase_learner(EMAIL.upper())
    anonymous = report.anonymous_email
    blank = {"email": anonymous, "name": ""}

    for payload in [*person["downloads"], person["watched"], person["comment"]]:
        expected = copy.deepcopy(payload)
        expected["data"]["learner"] = blank
        if "text" in expected["data"]:
            expected["data"]["text"] = f"Falar com {anonymous}, obrigada"
        assert stored(payload).payload == expected

    invoice = copy.deepcopy(person["invoice"])
    invoice["data"]["buyer"] = {"name": "", "email": anonymous}
    assert stored(person["invoice"]).payload == invoice

    cart = copy.deepcopy(person["cart"])
    cart["data"]["customer"] = {"email": anonymous, "name": "", "phone": ""}
    assert stored(person["cart"]).payload == cart


def test_erase_leaves_the_email_and_name_nowhere_in_the_database(person):
    text = database_text()
    assert EMAIL in text
    assert NAME.lower() in text
    failed = stored(person["watched"])
    assert failed.status == WebhookEvent.Status.FAILED
    assert EMAIL.upper() in failed.error

    report = erase_learner(EMAIL)

    text = database_text()
    assert EMAIL not in text
    assert NAME.lower() not in text
    failed.refresh_from_db()
    assert f"CRM refused {report.anonymous_email}" in failed.error
    assert "ValueError" in failed.error  # the traceback itself is kept
    assert OTHER_EMAIL in text
    assert OTHER_NAME.lower() in text


def test_erase_leaves_other_learners_untouched(person):
    other = Learner.objects.get(email=OTHER_EMAIL)
    payloads = {
        e.pk: e.payload
        for e in WebhookEvent.objects.filter(event_id__in=[p["id"] for p in person["others"]])
    }

    erase_learner(EMAIL)

    assert Learner.objects.get(pk=other.pk).name == OTHER_NAME
    assert other.downloads.count() == 1
    for pk, payload in payloads.items():
        assert WebhookEvent.objects.get(pk=pk).payload == payload


def test_erase_is_idempotent_and_unknown_emails_find_nothing(person):
    erase_learner(EMAIL)
    before = snapshot()

    again = erase_learner(EMAIL)
    unknown = erase_learner("nobody@example.com")
    anonymous = erase_learner(Learner.objects.exclude(email=OTHER_EMAIL).get().email)

    for report in (again, unknown, anonymous):
        assert not report.found
        assert (report.learners, report.downloads, report.producers, report.payloads) == (
            0,
            0,
            0,
            0,
        )
    assert str(unknown) == "No data for this e-mail: nobody@example.com"
    assert snapshot() == before


@pytest.mark.parametrize("bad", ["", "   ", "no-at-sign", "x" * 250 + "@example.com"])
def test_erase_refuses_what_is_not_an_email(bad):
    with pytest.raises(ValueError, match="not an e-mail address"):
        erase_learner(bad)


def test_erase_matches_the_address_only_as_a_whole(deliver):
    text = f"Fale com joana.{EMAIL}, {EMAIL}.br ou {EMAIL.title()}."
    # An undocumented type, so that only the text search can find it.
    payload = deliver(
        {
            "id": "reply-1",
            "event": "nutror.comment_replied",
            "sentDate": "2024-03-01T10:00:00.000Z",
            "data": {"learner": {"email": OTHER_EMAIL, "name": OTHER_NAME}, "text": text},
        }
    )

    report = erase_learner(EMAIL)

    assert report.payloads == 1
    assert stored(payload).payload["data"]["text"] == (
        f"Fale com joana.{EMAIL}, {EMAIL}.br ou {report.anonymous_email}."
    )
    assert stored(payload).payload["data"]["learner"] == {"email": OTHER_EMAIL, "name": OTHER_NAME}


def test_erase_a_producer_who_is_also_a_learner(deliver, django_capture_on_commit_callbacks):
    payload = deliver(
        sample_payload(
            "nutror.file_downloaded",
            producer={"email": EMAIL, "name": NAME, "eduzzId": 4321},
            learner={"email": EMAIL, "name": NAME},
        )
    )
    producer = Producer.objects.get(email=EMAIL)

    report = erase_learner(EMAIL)

    assert (report.learners, report.producers, report.payloads) == (1, 1, 1)
    producer.refresh_from_db()
    assert (producer.email, producer.name, producer.eduzz_id) == (report.anonymous_email, "", "")
    data = stored(payload).payload["data"]
    assert data["producer"] == {"email": report.anonymous_email, "name": "", "eduzzId": None}
    assert EMAIL not in database_text()

    # A replay of the erased event links it to the same anonymised rows: counts stay.
    with django_capture_on_commit_callbacks(execute=True):
        result = processing.process(stored(payload))
    assert result.outcome is processing.Outcome.PROCESSED
    assert (Learner.objects.count(), Producer.objects.count()) == (1, 1)
    download = FileDownload.objects.get()
    assert (download.learner.email, download.producer_id) == (report.anonymous_email, producer.pk)


def test_erase_many_addresses_in_groups_and_batches(deliver, monkeypatch):
    monkeypatch.setattr(privacy, "ERASE_GROUP_SIZE", 2)
    monkeypatch.setattr(privacy, "ERASE_BATCH_SIZE", 2)
    emails = [f"grupo{i}@example.com" for i in range(5)]
    for email in emails:
        deliver(learner_event("nutror.file_downloaded", email, f"Nome {email}"))
        deliver(learner_event("nutror.lesson_watched", email.upper(), f"Nome {email}"))

    reports = privacy.erase_learners([*emails, emails[0].upper(), "nobody@example.com"])

    assert [r.email for r in reports] == [*emails, "nobody@example.com"]
    assert [(r.learners, r.downloads, r.payloads) for r in reports] == [(1, 1, 2)] * 5 + [(0, 0, 0)]
    text = database_text()
    assert not any(email in text or f"nome {email}" in text for email in emails)


@pytest.mark.parametrize("domain", ["example.com", "exémplo.com.br"])
def test_erase_queries_do_not_grow_with_the_events(deliver, domain):
    def queries_to_erase(email: str, events: int) -> int:
        for _ in range(events):
            deliver(learner_event("nutror.lesson_watched", email, NAME))
        deliver(learner_event("nutror.file_downloaded", email, NAME))
        with CaptureQueriesContext(connection) as queries:
            report = erase_learner(email)
        assert report.payloads == events + 1
        return len(queries)

    assert queries_to_erase(f"few@{domain}", 1) == queries_to_erase(f"many@{domain}", 12)


# -- every letter case and normal form ---------------------------------------------------------


def cart_event(email: str, name: str) -> dict[str, Any]:
    """An undocumented event type: only the search of the payload's text finds the person."""
    return {
        "id": uuid.uuid4().hex,
        "event": "sun.cart_abandoned",
        "sentDate": "2024-03-01T10:00:00.000Z",
        "data": {"cartId": "c1", "customer": {"email": email, "name": name}},
    }


def deliver_refused(deliver: Any, payload: dict[str, Any], text: str) -> dict[str, Any]:
    """Deliver ``payload`` while a receiver fails with ``text`` in its error."""

    def crm(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        raise ValueError(f"CRM refused {text}")

    signals.event_received.connect(crm, weak=False)
    try:
        return deliver(payload)
    finally:
        signals.event_received.disconnect(crm)


@pytest.mark.parametrize(
    ("email", "sent"),
    [
        ("débora.ávila@example.com", "DÉBORA.ÁVILA@EXAMPLE.COM"),
        ("i\u0307pek@example.com", "\u0130PEK@EXAMPLE.COM"),  # U+0130 lowercases to two
        ("οδος@παράδειγμα.ελ", "ΟΔΟΣ@ΠΑΡΆΔΕΙΓΜΑ.ΕΛ"),  # a final sigma: Σ lowercases to ς
    ],
)
def test_erase_finds_the_address_in_any_letter_case_beyond_ascii(deliver, email, sent):
    name = "Débora Ávila"
    deliver(learner_event("nutror.file_downloaded", sent, name))
    deliver(learner_event("nutror.lesson_watched", sent.title(), name))
    deliver(cart_event(sent, name))
    failed = deliver_refused(deliver, sample_payload("myeduzz.invoice_paid"), sent)
    assert Learner.objects.get().email == email

    report = erase_learner(sent.title())

    assert (report.learners, report.downloads, report.payloads) == (1, 1, 4)
    assert email not in database_text()
    assert name.lower() not in database_text()
    assert f"CRM refused {report.anonymous_email}" in stored(failed).error


NFC_EMAIL = "josé.conceição@example.com"
NFD_EMAIL = unicodedata.normalize("NFD", NFC_EMAIL)


@pytest.mark.parametrize("asked", [NFC_EMAIL, NFD_EMAIL, NFD_EMAIL.upper()])
def test_erase_finds_the_address_in_either_normal_form(deliver, asked):
    assert NFD_EMAIL != NFC_EMAIL
    name = "José Conceição"
    downloads = [
        deliver(learner_event("nutror.file_downloaded", NFC_EMAIL, name)),
        deliver(learner_event("nutror.file_downloaded", NFD_EMAIL.upper(), name)),
    ]
    cart = deliver(cart_event(NFD_EMAIL, name))
    failed = deliver_refused(deliver, sample_payload("myeduzz.invoice_paid"), NFD_EMAIL)
    assert Learner.objects.get().email == NFC_EMAIL

    report = erase_learner(asked)

    assert (report.learners, report.downloads, report.payloads) == (1, 2, 4)
    assert "josé" not in database_text()
    assert "conceição" not in database_text()
    # What Eduzz sent is kept but for the person: the rest keeps its form.
    assert stored(cart).payload["data"]["customer"] == {
        "email": report.anonymous_email,
        "name": "",
    }
    assert stored(downloads[1]).payload["data"]["learner"]["email"] == report.anonymous_email
    assert f"CRM refused {report.anonymous_email}" in stored(failed).error


def test_erase_finds_a_learner_stored_before_addresses_were_normalised():
    legacy = Learner.objects.create(email=NFD_EMAIL, name="José Conceição")

    report = erase_learner(NFC_EMAIL.upper())

    assert report.learners == 1
    legacy.refresh_from_db()
    assert (legacy.email, legacy.name) == (f"erased-{legacy.pk}@invalid", "")


# -- eduzz_erase_learner -----------------------------------------------------------------------


def test_command_erases_without_input_and_prints_the_reports(person):
    out = StringIO()
    call_command("eduzz_erase_learner", EMAIL, "nobody@example.com", "--no-input", stdout=out)
    learner = Learner.objects.get(downloads__event__event_id=person["downloads"][0]["id"])
    assert learner.email.startswith("erased-")
    text = out.getvalue()
    assert f"{EMAIL} is now {learner.email}: 1 learner(s) anonymised (2 download(s) kept)" in text
    assert "6 stored event(s) scrubbed" in text
    assert "No data for this e-mail: nobody@example.com" in text


@pytest.mark.parametrize("answer", ["no", "", "y"])
def test_command_asks_and_a_refusal_changes_nothing(person, monkeypatch, answer):
    before = snapshot()
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or answer)
    out = StringIO()
    call_command("eduzz_erase_learner", EMAIL, stdout=out)
    assert EMAIL in prompts[0]
    assert "Type 'yes' to continue" in prompts[0]
    assert "cancelled" in out.getvalue()
    assert snapshot() == before


def test_command_erases_after_yes(person, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    call_command("eduzz_erase_learner", EMAIL.upper(), stdout=StringIO())
    assert not Learner.objects.filter(email=EMAIL).exists()


def test_command_without_an_answer_erases_nothing(person, monkeypatch):
    def no_terminal(prompt: str) -> str:
        raise EOFError

    before = snapshot()
    monkeypatch.setattr("builtins.input", no_terminal)
    with pytest.raises(CommandError, match="--no-input"):
        call_command("eduzz_erase_learner", EMAIL, stdout=StringIO())
    assert snapshot() == before


def test_command_refuses_bad_input_before_erasing_anything(person):
    before = snapshot()
    with pytest.raises(CommandError, match="'nope' is not an e-mail address"):
        call_command("eduzz_erase_learner", EMAIL, "nope", "--no-input")
    assert snapshot() == before
    with pytest.raises(CommandError):
        call_command("eduzz_erase_learner", "--no-input")


# -- admin action ------------------------------------------------------------------------------


def staff_client(client: Any, *, can_erase: bool) -> Any:
    user = User.objects.create_user("privacy", password="pw", is_staff=True)
    permissions = Permission.objects.filter(
        content_type__app_label="eduzz_webhooks", codename__startswith="view_"
    )
    if can_erase:
        permissions |= Permission.objects.filter(codename="erase_learner")
    user.user_permissions.set(permissions)
    client.force_login(user)
    return client


LEARNERS = reverse("admin:eduzz_webhooks_learner_changelist")


def test_admin_action_erases_the_selected_learners(person, client):
    staff = staff_client(client, can_erase=True)
    learner = Learner.objects.get(email=EMAIL)
    other = Learner.objects.get(email=OTHER_EMAIL)
    response = staff.get(LEARNERS)
    assert "erase_personal_data" in dict(response.context["action_form"].fields["action"].choices)

    response = staff.post(
        LEARNERS, {"action": "erase_personal_data", "_selected_action": [learner.pk]}, follow=True
    )

    texts = [str(m) for m in response.context["messages"]]
    assert texts == [
        "Erased the personal data of 1 learner: 2 download(s) kept, 6 stored event(s) scrubbed."
    ]
    learner.refresh_from_db()
    assert (learner.email, learner.name) == (f"erased-{learner.pk}@invalid", "")
    assert EMAIL not in database_text()
    assert Learner.objects.get(pk=other.pk).email == OTHER_EMAIL

    response = staff.post(
        LEARNERS, {"action": "erase_personal_data", "_selected_action": [learner.pk]}, follow=True
    )
    texts = [str(m) for m in response.context["messages"]]
    assert texts == ["1 selected learner had no personal data left (already erased)."]


def test_admin_action_needs_the_erase_permission(person, client):
    staff = staff_client(client, can_erase=False)
    learner = Learner.objects.get(email=EMAIL)
    response = staff.get(LEARNERS)
    assert response.status_code == 200
    assert "erase_personal_data" not in response.context["cl"].model_admin.get_actions(
        response.wsgi_request
    )
    before = snapshot()
    staff.post(LEARNERS, {"action": "erase_personal_data", "_selected_action": [learner.pk]})
    assert snapshot() == before


# -- retention ---------------------------------------------------------------------------------


def age(payload: dict[str, Any], days: float) -> None:
    WebhookEvent.objects.filter(event_id=payload["id"]).update(
        received_at=timezone.now() - dt.timedelta(days=days)
    )


def pruned(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": payload["id"],
        "event": payload["event"],
        "sentDate": payload["sentDate"],
        "pruned": True,
    }


@pytest.fixture
def aged(deliver: Any) -> dict[str, Any]:
    old = [
        deliver(learner_event("nutror.file_downloaded", EMAIL, NAME)),
        deliver(sample_payload("myeduzz.invoice_paid")),
    ]
    recent = deliver(learner_event("nutror.lesson_watched", EMAIL, NAME))
    failed = deliver(learner_event("nutror.file_downloaded", EMAIL, NAME, lesson=None))
    assert stored(failed).status == WebhookEvent.Status.FAILED
    pending = sample_payload("nutror.lesson_saved")
    WebhookEventFactory(
        event_id=pending["id"],
        event_type=pending["event"],
        payload=pending,
        status=WebhookEvent.Status.RECEIVED,
    )
    for payload in [*old, failed, pending]:
        age(payload, 40)
    age(recent, 10)
    return {"old": old, "recent": recent, "failed": failed, "pending": pending}


def test_retention_setting_defaults_to_keeping_payloads_forever():
    with override_settings(EDUZZ_WEBHOOKS={}):
        assert conf.PAYLOAD_RETENTION_DAYS is None
    with override_settings(EDUZZ_WEBHOOKS={"PAYLOAD_RETENTION_DAYS": "30"}):
        assert conf.PAYLOAD_RETENTION_DAYS == 30


def test_prune_only_processed_events_older_than_the_days(aged):
    downloads = FileDownload.objects.count()
    out = StringIO()
    call_command("eduzz_prune_payloads", "--days", "30", stdout=out)

    for payload in aged["old"]:
        assert stored(payload).payload == pruned(payload)
    for key in ("recent", "failed", "pending"):
        assert stored(aged[key]).payload == aged[key]
    assert FileDownload.objects.count() == downloads
    text = out.getvalue()
    assert "Pruned the payloads of 2 processed event(s)" in text
    assert "2 older event(s) are not processed (failed or pending)" in text

    out = StringIO()
    call_command("eduzz_prune_payloads", "--days", "5", stdout=out)
    assert stored(aged["recent"]).payload == pruned(aged["recent"])
    assert "Pruned the payloads of 1 processed event(s)" in out.getvalue()


def test_prune_uses_the_setting(aged):
    with override_settings(EDUZZ_WEBHOOKS={"PAYLOAD_RETENTION_DAYS": 30}):
        call_command("eduzz_prune_payloads", stdout=StringIO())
    assert [stored(p).payload for p in aged["old"]] == [pruned(p) for p in aged["old"]]
    assert stored(aged["recent"]).payload == aged["recent"]


def test_prune_dry_run_changes_nothing(aged):
    before = snapshot()
    out = StringIO()
    call_command("eduzz_prune_payloads", "--days", "30", "--dry-run", stdout=out)
    assert "Dry run: 2 processed event(s)" in out.getvalue()
    assert snapshot() == before


def test_prune_works_in_batches_with_bounded_queries(deliver):
    def queries_to_prune(events: int) -> int:
        WebhookEvent.objects.all().delete()
        for _ in range(events):
            age(deliver(sample_payload("nutror.lesson_watched")), 40)
        with CaptureQueriesContext(connection) as queries:
            report = privacy.prune_payloads(30, batch_size=100)
        assert report.pruned == events
        return len(queries)

    assert queries_to_prune(2) == queries_to_prune(20)
    for _ in range(5):
        age(deliver(sample_payload("nutror.lesson_watched")), 40)
    call_command("eduzz_prune_payloads", "--days", "30", "--batch-size", "2", stdout=StringIO())
    assert WebhookEvent.objects.filter(payload__pruned=True).count() == 25


def test_a_pruned_event_is_still_a_duplicate(aged, client):
    call_command("eduzz_prune_payloads", "--days", "30", stdout=StringIO())
    original = aged["old"][0]
    response = post_event(client, original)
    assert response.json()["status"] == "duplicate"
    assert stored(original).payload == pruned(original)
    assert FileDownload.objects.filter(event__event_id=original["id"]).count() == 1


def test_prune_then_erase_finds_no_payload(aged):
    call_command("eduzz_prune_payloads", "--days", "0", stdout=StringIO())
    report = erase_learner(EMAIL)
    assert report.learners == 1
    assert report.payloads == 1  # only the failed event, which kept its payload


@pytest.mark.parametrize(
    ("args", "settings_value", "message"),
    [
        ([], None, "PAYLOAD_RETENTION_DAYS"),
        ([], "thirty", "PAYLOAD_RETENTION_DAYS'] must be a whole number"),
        (["--days", "-1"], None, "must not be negative"),
        (["--days", "3", "--batch-size", "0"], None, "at least 1"),
    ],
)
def test_prune_bad_input(aged, args, settings_value, message):
    before = snapshot()
    with (
        override_settings(EDUZZ_WEBHOOKS={"PAYLOAD_RETENTION_DAYS": settings_value}),
        pytest.raises(CommandError, match=message),
    ):
        call_command("eduzz_prune_payloads", *args, stdout=StringIO())
    assert snapshot() == before


def test_prune_help_says_unprocessed_events_are_kept():
    help_text = " ".join(
        PruneCommand().create_parser("manage.py", "eduzz_prune_payloads").format_help().split()
    )
    assert "Only processed events are pruned" in help_text
    assert "PAYLOAD_RETENTION_DAYS" in help_text
