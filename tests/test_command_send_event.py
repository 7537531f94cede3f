"""``manage.py eduzz_send_event``: a signed sample or file, posted to a running server."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.testing import SAMPLE_EVENTS, sample_payload


@pytest.mark.django_db(transaction=True)
def test_send_event_posts_a_signed_sample_to_a_running_server(live_server, capsys):
    call_command("eduzz_send_event", "nutror.file_downloaded", url=f"{live_server.url}/eduzz/")
    out = capsys.readouterr().out
    assert "200 " in out
    assert '"status": "processed"' in out
    assert FileDownload.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_sample_is_dated_now_unless_told_to_keep_its_dates(live_server):
    url = f"{live_server.url}/eduzz/"
    before = timezone.now().replace(microsecond=0)
    call_command("eduzz_send_event", "nutror.file_downloaded", url=url)
    download = FileDownload.objects.get()
    assert before <= download.downloaded_at <= timezone.now()
    assert before <= download.event.sent_at <= timezone.now()
    call_command("eduzz_send_event", "nutror.file_downloaded", "--keep-dates", url=url)
    documented = sample_payload("nutror.file_downloaded")["data"]["createdAt"]
    assert FileDownload.objects.filter(downloaded_at__year=int(documented[:4])).count() == 1


@pytest.mark.django_db(transaction=True)
def test_send_event_every_sample_is_accepted(live_server):
    for event_type in SAMPLE_EVENTS:
        call_command("eduzz_send_event", event_type, url=f"{live_server.url}/eduzz/")
    assert WebhookEvent.objects.count() == len(SAMPLE_EVENTS) - 1  # ping is not stored


@pytest.mark.django_db(transaction=True)
def test_send_event_from_a_file_and_reports_refusals(live_server, tmp_path, capsys):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(sample_payload("nutror.lesson_watched")))
    call_command("eduzz_send_event", str(path), url=f"{live_server.url}/eduzz/")
    assert WebhookEvent.objects.get().event_type == "nutror.lesson_watched"
    with pytest.raises(CommandError, match="answered 401"):
        call_command("eduzz_send_event", str(path), url=f"{live_server.url}/eduzz/", secret="wrong")


@pytest.mark.django_db(transaction=True)
def test_send_event_from_a_file_without_id_or_event_prints_the_answer(
    live_server, tmp_path, capsys
):
    # An envelope the server keeps as failed: what the server answers is printed, no traceback.
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"data": {}}))
    call_command("eduzz_send_event", str(path), "--keep-id", url=f"{live_server.url}/eduzz/")
    out = capsys.readouterr().out
    assert out.startswith(f"- - -> {live_server.url}/eduzz/\n200 ")
    assert '"status": "failed"' in out
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_send_event_reports_a_redirect_instead_of_following_it(live_server, capsys):
    # Following it, urllib would send a GET (and print the 405 that answers it).
    with pytest.raises(CommandError, match="answered 301") as raised:
        call_command("eduzz_send_event", url=f"{live_server.url}/eduzz")
    assert raised.value.returncode == 2
    out = capsys.readouterr().out
    assert out.splitlines()[1:] == ["301 ", "Location: /eduzz/"]
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_send_event_shows_the_start_of_a_long_error_page(live_server, settings, capsys):
    # Django's debug page for a POST to a URL without its slash: asked for JSON, Django gives
    # the text form, whose first lines say what went wrong; the rest is left out.
    settings.DEBUG = True
    with pytest.raises(CommandError, match="answered 500"):
        call_command("eduzz_send_event", url=f"{live_server.url}/eduzz")
    out = capsys.readouterr().out
    assert "doesn't end in a slash" in out
    assert len(out) < 2000
    assert "bytes in all)" in out.splitlines()[-1]


def test_send_event_refuses_a_file_nested_too_deeply(tmp_path):
    path = tmp_path / "event.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CommandError, match="is not a JSON file"):
        call_command("eduzz_send_event", str(path), url="http://127.0.0.1:9/")


def test_send_event_unknown_event_or_file():
    with pytest.raises(CommandError, match="neither a sample"):
        call_command("eduzz_send_event", "nutror.nope", url="http://127.0.0.1:9/")
