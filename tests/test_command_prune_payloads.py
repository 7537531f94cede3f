"""``manage.py eduzz_prune_payloads``: days from the option or the setting, dry runs, refusals."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from eduzz_webhooks.management.commands.eduzz_prune_payloads import Command as PruneCommand
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.samples import sample_payload
from tests.personal_data import age, pruned, snapshot, stored

pytestmark = pytest.mark.django_db


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


def test_prune_in_batches_of_the_given_size(delivered):
    for _ in range(5):
        age(delivered(sample_payload("nutror.lesson_watched")), 40)
    call_command("eduzz_prune_payloads", "--days", "30", "--batch-size", "2", stdout=StringIO())
    assert WebhookEvent.objects.filter(payload__pruned=True).count() == 5


@pytest.mark.parametrize("days", ["365001", "1000000", str(10**10)])  # 10**10: past a timedelta
def test_prune_with_more_days_than_the_longest_retention_prunes_nothing(aged, days):
    before = snapshot()
    out = StringIO()
    call_command("eduzz_prune_payloads", "--days", days, stdout=out)
    assert out.getvalue().startswith("Pruned the payloads of 0 processed event(s) received before ")
    assert snapshot() == before


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
