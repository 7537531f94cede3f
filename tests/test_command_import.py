"""``manage.py eduzz_import``: an export or backup of events, through the webhook's processing."""

from __future__ import annotations

import io
import json
import os
import tracemalloc

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from eduzz_webhooks import signals
from eduzz_webhooks.management.commands import eduzz_import
from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.processing import Outcome
from eduzz_webhooks.testing import (
    FileDownloadedPayloadFactory,
    build_payload,
    immediate_on_commit,
)
from tests.servers import kill_own_connection

# Outside the test's transaction, as the command runs in production: its
# signals follow each event's commit.
pytestmark = pytest.mark.django_db(transaction=True)

LESSON_WATCHED = "nutror.lesson_watched"


def json_lines(path, payloads):
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads), "utf-8")
    return path


def run(path, *args, stderr=None):
    """Run the command; its stdout, or the CommandError's message after it."""
    out = io.StringIO()
    try:
        call_command("eduzz_import", str(path), *args, stdout=out, stderr=stderr or io.StringIO())
    except CommandError as exc:
        return out.getvalue() + f"CommandError: {exc}"
    return out.getvalue()


@pytest.fixture
def events():
    return [
        FileDownloadedPayloadFactory(),
        FileDownloadedPayloadFactory(),
        build_payload(LESSON_WATCHED),
    ]


def test_json_lines_are_processed_with_records_and_signals(tmp_path, events, signal_log):
    path = json_lines(tmp_path / "events.jsonl", events)
    out = run(path)
    assert out == (
        f"Imported {path}: 3 entries.\n"
        "  processed: 3\n"
        "  failed: 0\n"
        "  duplicate: 0\n"
        f"  {Outcome.QUEUED.label}: 0\n"
        "  invalid: 0\n"
        "Done.\n"
    )
    assert set(WebhookEvent.objects.values_list("event_id", "status")) == {
        (p["id"], WebhookEvent.Status.PROCESSED) for p in events
    }
    assert FileDownload.objects.count() == 2
    assert [e.event_id for e in signal_log.events] == [p["id"] for p in events]
    assert len(signal_log.downloads) == 2


def test_a_json_array_is_detected_and_imported(tmp_path, events, signal_log):
    path = tmp_path / "backup.json"
    # A BOM and an indented array, as editors and exporters write them.
    path.write_bytes(b"\xef\xbb\xbf\n  " + json.dumps(events, indent=2).encode())
    assert "  processed: 3\n" in run(path)
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED).count() == 3
    assert len(signal_log.events) == 3


def test_importing_again_creates_nothing_and_counts_duplicates(tmp_path, events, signal_log):
    path = json_lines(tmp_path / "events.jsonl", events)
    run(path)
    out = run(path)
    assert "  processed: 0\n" in out
    assert "  duplicate: 3\n" in out
    assert WebhookEvent.objects.count() == 3
    assert FileDownload.objects.count() == 2
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}
    assert len(signal_log.events) == 3  # once per event, on its first import


@pytest.mark.parametrize("batch_size", ["1", "2", "500"])
def test_an_event_twice_in_one_file_is_one_event(tmp_path, signal_log, batch_size):
    payload = FileDownloadedPayloadFactory()
    path = json_lines(tmp_path / "events.jsonl", [payload, build_payload(LESSON_WATCHED), payload])
    out = run(path, "--batch-size", batch_size)
    assert "  processed: 2\n" in out
    assert "  duplicate: 1\n" in out
    assert len(signal_log.downloads) == 1


def test_invalid_entries_are_listed_by_line_and_the_others_imported(tmp_path, events):
    valid = [json.dumps(p) for p in events]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                "",  # blank lines are skipped, and counted in line numbers
                valid[0],
                "{not json",
                '["a", "list"]',
                json.dumps({"id": "no-type", "data": {}}),
                valid[1],
                "",
                valid[2],
            ]
        ),
        "utf-8",
    )
    out = run(path)
    assert (
        f"  processed: 3\n  failed: 0\n  duplicate: 0\n  {Outcome.QUEUED.label}: 0\n  invalid: 3\n"
    ) in out
    assert (
        "Invalid entries (not imported):\n"
        "  line 3: The body is not valid JSON.\n"
        "  line 4: The body must be a JSON object.\n"
        "  line 5: The field 'event' must be a non-empty string.\n"
    ) in out
    assert out.endswith(
        f"CommandError: 3 entries of {path} are not Eduzz events and were not imported."
    )
    assert WebhookEvent.objects.count() == 3


def test_invalid_array_elements_are_listed_by_index(tmp_path, events):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps([events[0], 42, {"id": "", "event": "x"}, events[1]]), "utf-8")
    out = run(path)
    assert "  [1]: The body must be a JSON object.\n" in out
    assert "  [2]: The field 'id' must be a non-empty string.\n" in out
    assert "  processed: 2\n" in out


def test_unusable_data_is_stored_failed_and_listed(tmp_path, signal_log):
    broken = FileDownloadedPayloadFactory(data__learner__email="not-an-address")
    path = json_lines(tmp_path / "events.jsonl", [build_payload(LESSON_WATCHED), broken])
    out = run(path)
    assert "  processed: 1\n  failed: 1\n" in out
    assert (
        "Failed events (stored; run eduzz_replay --failed once the cause is fixed):\n"
        f"  line 2 (event {broken['id']}): data.learner.email: Must be an e-mail address.\n"
    ) in out
    assert WebhookEvent.objects.get(event_id=broken["id"]).status == WebhookEvent.Status.FAILED
    assert not signal_log.downloads
    assert "CommandError" not in out  # stored: only entries that aren't events fail the run


def test_a_raising_receiver_fails_the_event_and_importing_again_retries_it(
    tmp_path, events, connect
):
    def crm_down(sender, **kwargs):
        raise ConnectionError("CRM down")

    path = json_lines(tmp_path / "events.jsonl", events[:1])
    connect(signals.file_downloaded, crm_down)
    out = run(path)
    assert "  failed: 1\n" in out
    assert (
        f"  line 1 (event {events[0]['id']}): Receiver "
        "tests.test_command_import.test_a_raising_receiver_fails_the_event_and_importing_again_retries_it"
        ".<locals>.crm_down raised: ConnectionError: CRM down\n"
    ) in out

    signals.file_downloaded.disconnect(crm_down)
    out = run(path)  # a failed event is processed again, as for a re-delivery
    assert "  processed: 1\n  failed: 0\n  duplicate: 0\n" in out
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookEvent.Status.PROCESSED, 2)
    assert FileDownload.objects.count() == 1


def test_pings_are_ignored_as_the_webhook_does(tmp_path, events):
    path = json_lines(tmp_path / "events.jsonl", [build_payload("ping"), events[0]])
    out = run(path)
    assert "  processed: 1\n" in out
    assert "  ping (ignored): 1\n" in out
    assert WebhookEvent.objects.count() == 1


def test_background_mode_queues_the_events(tmp_path, events, settings, signal_log):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    out = run(json_lines(tmp_path / "events.jsonl", events))
    assert f"  processed: 0\n  failed: 0\n  duplicate: 0\n  {Outcome.QUEUED.label}: 3\n" in out
    assert FileDownload.objects.count() == 0
    assert signal_log.calls == []


@pytest.mark.django_db(transaction=False)
def test_inside_a_callers_transaction_the_signals_wait_for_its_commit(tmp_path, events, signal_log):
    path = json_lines(tmp_path / "events.jsonl", events)
    out = run(path)
    assert f"  {Outcome.PENDING.label}: 3\n" in out
    assert signal_log.calls == []

    with immediate_on_commit():
        assert "  duplicate: 3\n" in run(path)  # stored already, though not announced
    with immediate_on_commit():
        call_command("eduzz_replay", "--pending", "--older-than", "0", stdout=io.StringIO())
    assert len(signal_log.events) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty."),
        (b" \n\t\n", "is empty."),
        (b"hello", "is neither JSON lines (one event per line) nor a JSON array of events."),
        (b'"a string"', "is neither JSON lines"),
        (b'{\n  "id": "x",\n  "event": "y"\n}\n', "is not JSON lines: line 1 is not a complete"),
        (b"\n\n{oops\n", "is not JSON lines: line 3 is not a complete JSON object."),
        (b'{"a": ' + b"[" * 100_000 + b"\n", "is not JSON lines: line 1 is not a complete"),
        (b'[{"id": "x"},', "is not valid JSON: Expecting value: line 1 column 14"),
        (b'[{"id": "x"}] []', "is not valid JSON: Extra data"),
        (b'["\xff"]', "is not valid UTF-8."),
    ],
)
def test_bad_files_are_refused_before_anything_is_imported(tmp_path, content, message):
    path = tmp_path / "events.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match="^" + str(path) + " ") as error:
        call_command("eduzz_import", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert message in str(error.value)
    assert not WebhookEvent.objects.exists()


def test_missing_or_unreadable_files_and_bad_options(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*nope\.jsonl: No such file or directory"):
        call_command("eduzz_import", str(tmp_path / "nope.jsonl"))
    with pytest.raises(CommandError, match=r"is not a regular file\."):
        call_command("eduzz_import", str(tmp_path))
    os.mkfifo(tmp_path / "pipe")  # reading it would wait for a writer
    with pytest.raises(CommandError, match=r"pipe is not a regular file\."):
        call_command("eduzz_import", str(tmp_path / "pipe"))
    path = json_lines(tmp_path / "events.jsonl", [FileDownloadedPayloadFactory()])
    with pytest.raises(CommandError, match=r"--batch-size must be at least 1\."):
        call_command("eduzz_import", str(path), "--batch-size", "0")


@pytest.mark.concurrency
def test_a_lost_database_stops_the_import_and_says_how_to_finish(tmp_path, events, connect):
    port = connection.settings_dict["PORT"]

    def lose_the_database(sender, event, **kwargs):
        if event.event_id == events[1]["id"]:
            # The server goes away: the connection dies and reconnecting fails too.
            connection.settings_dict["PORT"] = "1"
            with connection.cursor() as cursor:
                kill_own_connection(cursor)

    connect(signals.event_received, lose_the_database)
    path = json_lines(tmp_path / "events.jsonl", events)
    try:
        out = run(path)
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()  # the next query reconnects
    assert f"Imported {path}: 1 entry.\n  processed: 1\n" in out
    assert "CommandError: The database is unavailable (" in out
    assert "eduzz_replay --pending" in out
    # The second event was stored before its receivers ran; the third never was.
    statuses = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert statuses == {events[0]["id"]: "processed", events[1]["id"]: "received"}

    signals.event_received.disconnect(lose_the_database)
    out = run(path)
    assert "  processed: 1\n  failed: 0\n  duplicate: 2\n" in out
    call_command("eduzz_replay", "--pending", "--older-than", "0", stdout=io.StringIO())
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def lessons_watched(count):
    return [build_payload("nutror.lesson_watched") for _ in range(count)]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def on_a_terminal(path, **options):
    """Run the command with stderr on a terminal (colours forced on): its stdout and stderr."""
    stdout, stderr = io.StringIO(), Terminal()
    command = eduzz_import.Command(stdout=stdout, stderr=stderr, force_color=True)
    try:
        call_command(command, str(path), force_color=True, **options)
    except CommandError as exc:
        stdout.write(f"CommandError: {exc}")
    return stdout.getvalue(), stderr.getvalue()


def last_drawn(progress):
    return progress.rstrip("\n").rsplit("\r", 1)[-1]


def test_progress_is_redrawn_in_place_on_a_terminal_and_not_as_an_error(tmp_path):
    path = json_lines(tmp_path / "events.jsonl", lessons_watched(5))
    _, progress = on_a_terminal(path)
    assert progress.startswith("\r")
    assert progress.count("\n") == 1  # one line, redrawn, left in place
    size = path.stat().st_size / 1024
    assert last_drawn(progress).startswith(f"100%|##########| {size:.2f}k/{size:.2f}k [")
    assert "\x1b[" not in progress  # not coloured as an error


def test_progress_of_a_json_array_counts_its_entries(tmp_path):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(lessons_watched(5)), "utf-8")
    _, progress = on_a_terminal(path)
    assert last_drawn(progress).startswith("100%|##########| 5/5 [")
    assert last_drawn(progress).endswith(" entries/s]")


def test_a_refused_file_draws_no_progress(tmp_path):
    path = tmp_path / "events.json"
    path.write_bytes(b'{\n  "id": "x"\n}\n')
    out, progress = on_a_terminal(path)
    assert out.startswith(f"CommandError: {path} is not JSON lines")
    assert progress == ""


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path):
    payloads = lessons_watched(30)
    stderr = io.StringIO()
    out = run(json_lines(tmp_path / "events.jsonl", payloads), stderr=stderr)
    assert "  processed: 30\n" in out
    assert stderr.getvalue() == ""


def test_no_progress_at_verbosity_0(tmp_path):
    path = json_lines(tmp_path / "events.jsonl", lessons_watched(1))
    out, progress = on_a_terminal(path, verbosity=0)
    assert progress == ""
    assert out.startswith(f"Imported {path}: 1 entry.\n  processed: 1\n")
    assert WebhookEvent.objects.count() == 1


def test_json_lines_are_streamed_in_bounded_memory(tmp_path):
    # 4,000 entries of ~2 kB (8 MB): neither the file nor the list of its
    # invalid entries may be held in memory.
    padding = "x" * 2000
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for n in range(4000):
            f.write(json.dumps({"id": f"entry-{n}", "padding": padding}) + "\n")
    tracemalloc.start()
    try:
        out = run(path, "--batch-size", "100")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "  invalid: 4000\n" in out
    assert out.count("The field 'event' must be a non-empty string.") == 100
    assert "  ... and 3900 more.\n" in out
    assert peak < 2_000_000, peak


def test_imported_and_delivered_events_share_one_history(tmp_path, deliver):
    """An event imported after it was delivered (or the reverse) is a duplicate."""
    delivered = FileDownloadedPayloadFactory(data__learner__email="ana@example.com")
    deliver(delivered)
    imported = FileDownloadedPayloadFactory(data__learner__email="ana@example.com")
    out = run(json_lines(tmp_path / "events.jsonl", [delivered, imported]))
    assert "  processed: 1\n  failed: 0\n  duplicate: 1\n" in out
    assert deliver(imported).json()["status"] == "duplicate"
    assert Learner.objects.count() == 1
    assert FileDownload.objects.count() == 2
