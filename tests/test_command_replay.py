"""``manage.py eduzz_replay``: stored events claimed and processed again, by id, failed or stale."""

from __future__ import annotations

import datetime as dt
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from eduzz_webhooks import signals
from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.payloads import parse_envelope
from eduzz_webhooks.processing import Outcome
from eduzz_webhooks.testing import encode, post_event, sample_payload


def store_failed(payload):
    """Store an event as a crashed or failed first attempt would leave it."""
    envelope = parse_envelope(encode(payload))
    return WebhookEvent.objects.create(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        payload=envelope.payload,
        status=WebhookEvent.Status.FAILED,
        error="boom",
        attempts=1,
    )


@pytest.mark.django_db(transaction=True)
def test_replay_by_id_runs_processing_and_signals(signal_log, capsys):
    event = store_failed(sample_payload("nutror.file_downloaded"))
    call_command("eduzz_replay", event.event_id)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.attempts == 2
    assert FileDownload.objects.get().event == event
    assert len(signal_log.of(signals.file_downloaded)) == 1
    assert f"{event.event_id}: processed" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_replay_twice_never_duplicates_records(signal_log):
    event = store_failed(sample_payload("nutror.file_downloaded"))
    call_command("eduzz_replay", event.event_id)
    call_command("eduzz_replay", event.event_id)
    assert FileDownload.objects.count() == 1
    assert Learner.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_replay_failed_takes_only_failed_events(signal_log):
    failed = store_failed(sample_payload("nutror.file_downloaded"))
    done = store_failed(sample_payload("nutror.lesson_watched"))
    WebhookEvent.objects.filter(pk=done.pk).update(status=WebhookEvent.Status.PROCESSED)
    call_command("eduzz_replay", "--failed")
    failed.refresh_from_db()
    assert failed.status == WebhookEvent.Status.PROCESSED
    assert [c["event"].event_id for c in signal_log.of(signals.event_received)] == [failed.event_id]


@pytest.mark.django_db(transaction=True)
def test_replay_pending_finishes_events_left_by_a_crash(signal_log):
    event = store_failed(sample_payload("nutror.file_downloaded"))
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.RECEIVED)
    call_command("eduzz_replay", "--pending", "--older-than", "0")
    call_command("eduzz_replay", "--pending", "--older-than", "0")
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert len(signal_log.of(signals.file_downloaded)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("minutes", ["-1", "nan", "inf", "1e12"])
def test_replay_refuses_an_age_no_attempt_can_have(minutes):
    with pytest.raises(CommandError, match="--older-than must be a number of minutes from 0 to"):
        call_command("eduzz_replay", "--pending", "--older-than", minutes)


@pytest.mark.django_db(transaction=True)
def test_replay_of_still_unusable_data_stays_failed():
    event = store_failed(sample_payload("nutror.file_downloaded", lesson={}))
    call_command("eduzz_replay", event.event_id)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error.startswith("data.lesson.id: ")


@pytest.mark.django_db
def test_replay_needs_something_to_do_and_known_ids():
    with pytest.raises(CommandError, match="--failed"):
        call_command("eduzz_replay")
    with pytest.raises(CommandError, match="Unknown event ids: nope"):
        call_command("eduzz_replay", "nope")


@pytest.mark.django_db(transaction=True)
def test_a_received_event_in_progress_is_not_taken_over(signal_log):
    event = store_failed(sample_payload("nutror.file_downloaded"))
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEvent.Status.RECEIVED, claimed_at=timezone.now()
    )
    call_command("eduzz_replay", "--pending")  # default: attempts older than ATTEMPT_TIMEOUT
    call_command("eduzz_replay", event.event_id)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.RECEIVED
    assert signal_log.calls == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_pending_replays_process_each_event_once(signal_log):
    events = [store_failed(sample_payload("nutror.file_downloaded")) for _ in range(20)]
    # Left by a crash an hour ago; each replay takes over attempts older than 30 minutes.
    WebhookEvent.objects.update(
        status=WebhookEvent.Status.RECEIVED, claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    barrier = threading.Barrier(4)

    def replay(_):
        barrier.wait()
        try:
            call_command("eduzz_replay", "--pending", "--older-than", "30", verbosity=0)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(replay, range(4)))
    announced = [c["event"].event_id for c in signal_log.of(signals.file_downloaded)]
    assert sorted(announced) == sorted(e.event_id for e in events)
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {2}


@pytest.mark.django_db(transaction=True)
def test_replaying_a_pruned_event_leaves_it_processed(signal_log):
    payload = {"id": "old", "event": "nutror.file_downloaded", "sentDate": None, "pruned": True}
    event = WebhookEvent.objects.create(
        event_id="old",
        event_type="nutror.file_downloaded",
        payload=payload,
        status=WebhookEvent.Status.PROCESSED,
    )
    call_command("eduzz_replay", "old")
    call_command("eduzz_replay", "--failed")
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert signal_log.calls == []


@pytest.mark.django_db(transaction=True)
def test_replay_labels_each_outcome_as_processing_does_and_counts_them(signal_log):
    processed = store_failed(sample_payload("nutror.file_downloaded"))
    failed = store_failed(sample_payload("nutror.file_downloaded", lesson={}))
    pruned = store_failed(sample_payload("nutror.lesson_watched"))
    pruned_payload = {"id": pruned.event_id, "event": pruned.event_type, "pruned": True}
    WebhookEvent.objects.filter(pk=pruned.pk).update(payload=pruned_payload)
    taken = store_failed(sample_payload("nutror.file_downloaded"))
    # Another replay or delivery is processing it: the claim is lost.
    WebhookEvent.objects.filter(pk=taken.pk).update(
        status=WebhookEvent.Status.RECEIVED, claimed_at=timezone.now()
    )
    ids = [processed.event_id, failed.event_id, pruned.event_id, taken.event_id]
    out = io.StringIO()
    call_command("eduzz_replay", *ids, stdout=out)
    assert out.getvalue() == (
        f"{processed.event_id}: {Outcome.PROCESSED.label}\n"
        f"{failed.event_id}: {Outcome.FAILED.label} (data.lesson.id: This field is required.)\n"
        f"{pruned.event_id}: {Outcome.PRUNED.label}\n"
        f"{taken.event_id}: {Outcome.SKIPPED.label}\n"
        "Replayed 4 events.\n"
        f"  {Outcome.PROCESSED.label}: 1\n"
        f"  {Outcome.FAILED.label}: 1\n"
        f"  {Outcome.PRUNED.label}: 1\n"
        f"  {Outcome.SKIPPED.label}: 1\n"
    )


@pytest.mark.django_db
def test_replay_of_nothing_says_so():
    out = io.StringIO()
    call_command("eduzz_replay", "--failed", "--pending", stdout=out)
    assert out.getvalue() == "Replayed 0 events.\n"


@pytest.mark.django_db(transaction=True)
def test_replay_pending_takes_the_setting_as_its_default_age(settings):
    event = store_failed(sample_payload("nutror.file_downloaded"))
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEvent.Status.RECEIVED,
        claimed_at=timezone.now() - dt.timedelta(seconds=120),
    )
    call_command("eduzz_replay", "--pending", verbosity=0)
    assert WebhookEvent.objects.get(pk=event.pk).status == "received"  # 120 s < 300 s
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "ATTEMPT_TIMEOUT": 60}
    call_command("eduzz_replay", "--pending", verbosity=0)
    assert WebhookEvent.objects.get(pk=event.pk).status == "processed"


@pytest.mark.django_db(transaction=True)
def test_replay_of_an_unusable_envelope_says_why_it_cannot_be_processed(client):
    post_event(client, b'{"event": "alpaclass.student_module_finished"}')
    (event,) = WebhookEvent.objects.all()
    out = io.StringIO()
    call_command("eduzz_replay", event.event_id, stdout=out)
    assert (
        f"{event.event_id}: failed (The field 'id' must be a non-empty string.)" in out.getvalue()
    )
    assert WebhookEvent.objects.get().status == "failed"
