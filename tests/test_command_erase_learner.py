"""``manage.py eduzz_erase_learner``: confirmation, reports, and refusals that change nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from eduzz_webhooks.models import Learner
from tests.personal_data import EMAIL, snapshot

pytestmark = pytest.mark.django_db


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
