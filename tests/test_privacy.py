"""``privacy``: erasing a learner's personal data (and the admin action), pruning old payloads."""

from __future__ import annotations

import copy
import json
import unicodedata
import uuid
from collections import Counter
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import CharField, JSONField, TextField
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from eduzz_webhooks import privacy, processing, signals
from eduzz_webhooks.conf import conf
from eduzz_webhooks.models import FileDownload, Learner, Producer, WebhookEvent
from eduzz_webhooks.privacy import erase_learner
from eduzz_webhooks.samples import sample_payload
from eduzz_webhooks.testing import WebhookEventFactory, post_event
from tests.personal_data import (
    EMAIL,
    NAME,
    OTHER_EMAIL,
    OTHER_NAME,
    age,
    learner_event,
    pruned,
    snapshot,
    stored,
)

pytestmark = pytest.mark.django_db


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


def test_erase_matches_the_address_only_as_a_whole(delivered):
    text = f"Fale com joana.{EMAIL}, {EMAIL}.br ou {EMAIL.title()}."
    # An undocumented type, so that only the text search can find it.
    payload = delivered(
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


def test_erase_replaces_the_address_where_it_is_a_json_key(delivered):
    # An undocumented type, whose payload holds the address as a key, in another letter case.
    payload = delivered(
        {
            "id": "survey-1",
            "event": "nutror.survey_answered",
            "sentDate": "2024-03-01T10:00:00.000Z",
            "data": {"answers": {EMAIL.upper(): "sim", OTHER_EMAIL: "não"}},
        }
    )

    report = erase_learner(EMAIL)

    assert report.payloads == 1
    assert stored(payload).payload["data"]["answers"] == {
        report.anonymous_email: "sim",
        OTHER_EMAIL: "não",
    }
    assert EMAIL not in database_text()


@pytest.mark.django_db(transaction=True, databases=["default", "events"])
def test_erase_on_the_apps_own_database(own_database, delivered):
    # Its rows are locked in a transaction of the database they are routed to.
    delivered(learner_event("nutror.file_downloaded", EMAIL, NAME))

    report = erase_learner(EMAIL)

    assert (report.learners, report.payloads) == (1, 1)
    assert EMAIL not in database_text()


@pytest.mark.parametrize("role", ["student", "affiliate"])
def test_erase_finds_every_person_of_an_invoice(delivered, role):
    # MyEduzz invoices as Eduzz publishes them name, beside the buyer, a student and an
    # affiliate, each an object with an e-mail, at places the shipped sample lacks.
    payload = sample_payload("myeduzz.invoice_paid")
    payload["data"]["student"] = {"name": OTHER_NAME, "email": OTHER_EMAIL}
    payload["data"]["affiliate"] = {"name": "Afiliado", "email": "afiliado@example.com"}
    payload["data"][role] = {"name": NAME, "email": EMAIL.upper()}
    delivered(payload)

    report = erase_learner(EMAIL)

    assert report.payloads == 1
    data = stored(payload).payload["data"]
    assert data[role] == {"name": "", "email": report.anonymous_email}
    assert data["buyer"] == sample_payload("myeduzz.invoice_paid")["data"]["buyer"]
    assert EMAIL not in database_text()


def test_erase_finds_the_address_in_another_letter_case_by_text_search(delivered):
    # Only the text searches look here: an undocumented type's payload, and the error of
    # an event whose payload names somebody else. They must not depend on the column's
    # collation (MariaDB's recommended one is case-sensitive).
    payload = delivered(
        {
            "id": "reply-2",
            "event": "nutror.comment_replied",
            "sentDate": "2024-03-01T10:00:00.000Z",
            "data": {"text": f"Fale com {EMAIL.upper()}"},
        }
    )
    failed = WebhookEventFactory(
        status=WebhookEvent.Status.FAILED, error=f"CRM refused {EMAIL.title()}"
    )

    report = erase_learner(EMAIL)

    assert report.payloads == 2
    assert stored(payload).payload["data"]["text"] == f"Fale com {report.anonymous_email}"
    failed.refresh_from_db()
    assert failed.error == f"CRM refused {report.anonymous_email}"


def test_erase_a_producer_who_is_also_a_learner(delivered, django_capture_on_commit_callbacks):
    payload = delivered(
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


def test_erase_many_addresses_in_groups_and_batches(delivered, monkeypatch):
    monkeypatch.setattr(privacy, "ERASE_GROUP_SIZE", 2)
    monkeypatch.setattr(privacy, "ERASE_BATCH_SIZE", 2)
    emails = [f"grupo{i}@example.com" for i in range(5)]
    for email in emails:
        delivered(learner_event("nutror.file_downloaded", email, f"Nome {email}"))
        delivered(learner_event("nutror.lesson_watched", email.upper(), f"Nome {email}"))

    reports = privacy.erase_learners([*emails, emails[0].upper(), "nobody@example.com"])

    assert [r.email for r in reports] == [*emails, "nobody@example.com"]
    assert [(r.learners, r.downloads, r.payloads) for r in reports] == [(1, 1, 2)] * 5 + [(0, 0, 0)]
    text = database_text()
    assert not any(email in text or f"nome {email}" in text for email in emails)


@pytest.mark.parametrize("domain", ["example.com", "exémplo.com.br"])
def test_erase_queries_do_not_grow_with_the_events(delivered, domain):
    def queries_to_erase(email: str, events: int) -> int:
        for _ in range(events):
            delivered(learner_event("nutror.lesson_watched", email, NAME))
        delivered(learner_event("nutror.file_downloaded", email, NAME))
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


def deliver_refused(delivered: Any, payload: dict[str, Any], text: str) -> dict[str, Any]:
    """Deliver ``payload`` while a receiver fails with ``text`` in its error."""

    def crm(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        raise ValueError(f"CRM refused {text}")

    signals.event_received.connect(crm, weak=False)
    try:
        return delivered(payload)
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
def test_erase_finds_the_address_in_any_letter_case_beyond_ascii(delivered, email, sent):
    name = "Débora Ávila"
    delivered(learner_event("nutror.file_downloaded", sent, name))
    delivered(learner_event("nutror.lesson_watched", sent.title(), name))
    delivered(cart_event(sent, name))
    failed = deliver_refused(delivered, sample_payload("myeduzz.invoice_paid"), sent)
    assert Learner.objects.get().email == email

    report = erase_learner(sent.title())

    assert (report.learners, report.downloads, report.payloads) == (1, 1, 4)
    assert email not in database_text()
    assert name.lower() not in database_text()
    assert f"CRM refused {report.anonymous_email}" in stored(failed).error


NFC_EMAIL = "josé.conceição@example.com"
NFD_EMAIL = unicodedata.normalize("NFD", NFC_EMAIL)


@pytest.mark.parametrize("asked", [NFC_EMAIL, NFD_EMAIL, NFD_EMAIL.upper()])
def test_erase_finds_the_address_in_either_normal_form(delivered, asked):
    assert NFD_EMAIL != NFC_EMAIL
    name = "José Conceição"
    downloads = [
        delivered(learner_event("nutror.file_downloaded", NFC_EMAIL, name)),
        delivered(learner_event("nutror.file_downloaded", NFD_EMAIL.upper(), name)),
    ]
    cart = delivered(cart_event(NFD_EMAIL, name))
    failed = deliver_refused(delivered, sample_payload("myeduzz.invoice_paid"), NFD_EMAIL)
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


def test_retention_setting_defaults_to_keeping_payloads_forever():
    with override_settings(EDUZZ_WEBHOOKS={}):
        assert conf.PAYLOAD_RETENTION_DAYS is None
    with override_settings(EDUZZ_WEBHOOKS={"PAYLOAD_RETENTION_DAYS": 30}):
        assert conf.PAYLOAD_RETENTION_DAYS == 30


def test_the_longest_retention_prunes_nothing(aged):
    # 1000 years, the most the setting takes: the date that long ago is one every database holds.
    assert privacy.prune_payloads(365_000).pruned == 0


def test_prune_works_in_batches_with_bounded_queries(delivered):
    def queries_to_prune(events: int) -> int:
        WebhookEvent.objects.all().delete()
        for _ in range(events):
            age(delivered(sample_payload("nutror.lesson_watched")), 40)
        with CaptureQueriesContext(connection) as queries:
            report = privacy.prune_payloads(30, batch_size=100)
        assert report.pruned == events
        return len(queries)

    assert queries_to_prune(2) == queries_to_prune(20)
    for _ in range(5):
        age(delivered(sample_payload("nutror.lesson_watched")), 40)
    assert privacy.prune_payloads(30, batch_size=2).pruned == 5
    assert WebhookEvent.objects.filter(payload__pruned=True).count() == 25


def test_a_pruned_event_is_still_a_duplicate(aged, client):
    privacy.prune_payloads(30)
    original = aged["old"][0]
    response = post_event(client, original)
    assert response.json()["status"] == "duplicate"
    assert stored(original).payload == pruned(original)
    assert FileDownload.objects.filter(event__event_id=original["id"]).count() == 1


def test_prune_then_erase_finds_no_payload(aged):
    privacy.prune_payloads(0)
    report = erase_learner(EMAIL)
    assert report.learners == 1
    assert report.payloads == 1  # only the failed event, which kept its payload
