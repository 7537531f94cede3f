"""Portuguese (pt_BR) first-class: a complete, current catalog, and pages and answers in it."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command, load_command_class
from django.core.management.utils import popen_wrapper
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.text import capfirst

import eduzz_webhooks
from eduzz_webhooks.models import Learner, WebhookEvent
from eduzz_webhooks.samples import encode, sample_payload
from eduzz_webhooks.testing import (
    FileDownloadFactory,
    LearnerFactory,
    WebhookEventFactory,
    immediate_on_commit,
    post_event,
)

PACKAGE = Path(eduzz_webhooks.__file__).parent
MESSAGES = PACKAGE / "locale" / "pt_BR" / "LC_MESSAGES"
PO = MESSAGES / "django.po"
MO = MESSAGES / "django.mo"
# What a Brazilian browser sends.
PORTUGUESE = {"accept-language": "pt-BR,pt;q=0.9,en;q=0.8"}
COMMANDS = [
    "eduzz_erase_learner",
    "eduzz_import",
    "eduzz_prune_payloads",
    "eduzz_replay",
    "eduzz_send_event",
]


@pytest.fixture(autouse=True)
def _keep_the_active_language() -> Iterator[None]:
    # Requests activate a language (LocaleMiddleware) and nothing deactivates it: without
    # this, the tests after these would run in Portuguese.
    with translation.override(translation.get_language()):
        yield


# -- the catalog -------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    context: str | None
    msgid: str
    plural: str | None
    msgstrs: tuple[str, ...]
    flags: frozenset[str] = field(default=frozenset())

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.context, self.msgid, self.plural)


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file, header included, obsolete (``#~``) ones left out."""
    entries = []
    for block in path.read_text("utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        flags: set[str] = set()
        keyword = ""
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                flags.update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                fields[keyword] += ast.literal_eval(line)
            else:
                keyword, _space, value = line.partition(" ")
                fields[keyword] = ast.literal_eval(value)
        if "msgid" not in fields:
            continue
        plural = "msgid_plural" in fields
        msgstrs = (
            tuple(fields[key] for key in sorted(fields) if key.startswith("msgstr["))
            if plural
            else (fields["msgstr"],)
        )
        entries.append(
            Entry(
                context=fields.get("msgctxt"),
                msgid=fields["msgid"],
                plural=fields.get("msgid_plural"),
                msgstrs=msgstrs,
                flags=frozenset(flags),
            )
        )
    return entries


def messages(entries: list[Entry]) -> list[Entry]:
    return [entry for entry in entries if entry.msgid]


def placeholders(text: str, entry: Entry) -> Counter[str]:
    """The ``%(name)d``/``%s`` (or ``{name}``) placeholders of a message, counted."""
    if "python-brace-format" in entry.flags:
        return Counter(re.findall(r"\{\w*\}", text))
    if "python-format" in entry.flags:
        return Counter(re.findall(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]", text))
    return Counter()


def test_every_message_is_translated_and_none_is_fuzzy() -> None:
    entries = read_po(PO)
    header = next(entry for entry in entries if not entry.msgid).msgstrs[0]
    assert "Language: pt_BR\n" in header
    assert "Plural-Forms: nplurals=2; plural=(n > 1);\n" in header
    assert len(messages(entries)) > 150  # the whole app, not a sample of it
    for entry in entries:
        assert "fuzzy" not in entry.flags, entry.msgid
        assert all(entry.msgstrs), f"not translated: {entry.msgid!r}"
    for entry in messages(entries):
        if entry.plural is None:
            assert len(entry.msgstrs) == 1
            sources = [entry.msgid]
        else:
            assert len(entry.msgstrs) == 2, entry.msgid
            sources = [entry.msgid, entry.plural]
        for source, translated in zip(sources, entry.msgstrs, strict=True):
            assert placeholders(translated, entry) == placeholders(source, entry), entry.msgid


def test_gettext_accepts_the_catalog() -> None:
    # What compilemessages runs: placeholders must match their msgid's, as gettext sees them.
    _out, err, status = popen_wrapper(["msgfmt", "--check", "-o", os.devnull, str(PO)])
    assert status == 0, err


def test_the_catalog_holds_every_message_of_the_code_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # makemessages, as a maintainer runs it in the package, on a copy without the catalog.
    copy = tmp_path / "eduzz_webhooks"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["pt_BR"], verbosity=0, stdout=StringIO())
    fresh = {entry.key for entry in messages(read_po(copy / "locale/pt_BR/LC_MESSAGES/django.po"))}
    shipped = {entry.key for entry in messages(read_po(PO))}
    hint = (
        "run `django-admin makemessages -l pt_BR` in eduzz_webhooks/, translate, then "
        "`django-admin compilemessages`"
    )
    assert not fresh - shipped, f"not in the catalog ({hint}): {sorted(fresh - shipped, key=str)}"
    assert not shipped - fresh, f"not in the code ({hint}): {sorted(shipped - fresh, key=str)}"


def test_the_compiled_catalog_is_the_current_one() -> None:
    expected: dict[Any, str] = {}
    for entry in messages(read_po(PO)):
        key = f"{entry.context}\x04{entry.msgid}" if entry.context else entry.msgid
        if entry.plural is None:
            expected[key] = entry.msgstrs[0]
        else:
            expected.update({(key, n): text for n, text in enumerate(entry.msgstrs)})
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    # The header: msgfmt keeps what gettext uses of it (dates aside).
    assert compiled.info()["language"] == "pt_BR"
    assert [compiled.plural(n) for n in (0, 1, 2, 10)] == [0, 0, 1, 1]
    catalog = {key: text for key, text in compiled._catalog.items() if key != ""}
    assert catalog == expected, "run `django-admin compilemessages` in eduzz_webhooks/"


def translation_of(msgid: str) -> str:
    """The shipped catalog's translation of ``msgid``, read from the .po, not through Django."""
    (entry,) = [e for e in read_po(PO) if e.msgid == msgid and e.context is None]
    return entry.msgstrs[0]


# -- the admin in Portuguese -------------------------------------------------------------


@pytest.mark.django_db
def test_admin_index_shows_every_label_of_the_app_in_portuguese(
    admin_client: Any, settings: Any
) -> None:
    settings.LANGUAGE_CODE = "pt-br"
    config = apps.get_app_config("eduzz_webhooks")
    models = [model for model in config.get_models() if admin.site.is_registered(model)]
    with translation.override("en"):
        english = [str(config.verbose_name)] + [
            str(model._meta.verbose_name_plural) for model in models
        ]
    expected = [capfirst(translation_of(label)) for label in english]

    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    (app,) = [app for app in response.context["app_list"] if app["app_label"] == config.label]
    assert str(app["name"]) == expected[0]
    assert sorted(str(model["name"]) for model in app["models"]) == sorted(expected[1:])
    html = response.content.decode()
    for portuguese, label in zip(expected, english, strict=True):
        assert f">{portuguese}<" in html
        assert portuguese != capfirst(label)
        assert capfirst(label) not in html
    assert "Webhooks da Eduzz" in html
    assert "Downloads de arquivos" in html


@pytest.mark.django_db
def test_download_list_is_portuguese(admin_client: Any) -> None:
    FileDownloadFactory.create_batch(2)  # two courses: the course filter shows

    response = admin_client.get(
        reverse("admin:eduzz_webhooks_filedownload_changelist"), headers=PORTUGUESE
    )

    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Análise", "Exportar CSV", "Baixado em", "Aluno", "Curso", "Aula", "Produtor"):
        assert f">{text}<" in html, text
    assert "Por curso" in html  # the filters
    assert "Por baixado em" in html
    for english in ("Insight", "Export CSV", "Downloaded at", "Learner", "Lesson", "Producer"):
        assert f">{english}<" not in html, english


@pytest.mark.django_db
def test_event_list_is_portuguese(admin_client: Any) -> None:
    WebhookEventFactory(status=WebhookEvent.Status.PROCESSED)
    WebhookEventFactory(status=WebhookEvent.Status.FAILED)

    response = admin_client.get(
        reverse("admin:eduzz_webhooks_webhookevent_changelist"), headers=PORTUGUESE
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Reprocessar os eventos selecionados" in html  # the action
    for text in ("Id do evento", "Tipo de evento", "Status", "Tentativas"):
        assert f">{text}<" in html, text
    assert "&nbsp;processado" in html  # the status badges
    assert "&nbsp;com falha" in html
    assert "Replay the selected events" not in html
    assert "&nbsp;failed" not in html


@pytest.mark.django_db
def test_insight_page_is_portuguese(admin_client: Any) -> None:
    FileDownloadFactory.create_batch(2, downloaded_at=timezone.now())

    response = admin_client.get(
        reverse("admin:eduzz_webhooks_filedownload_insight"), headers=PORTUGUESE
    )

    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "Análise de downloads",
        "Downloads por dia",
        "2 downloads de ",
        "Dia com mais downloads: ",
        "Ver na lista de downloads",
        "Dia a dia",
        "Cursos mais baixados",
        "Aulas mais baixadas",
    ):
        assert text in html, text
    assert "Downloads insight" not in html
    assert "Busiest day" not in html


# -- the webhook's answers in Portuguese -------------------------------------------------


@pytest.mark.django_db
def test_webhook_answers_a_portuguese_client_in_portuguese(client: Any) -> None:
    body = encode(sample_payload("nutror.file_downloaded"))
    response = client.post("/eduzz/", body, content_type="application/json", headers=PORTUGUESE)
    assert response.status_code == 401
    assert response.json() == {"detail": "O cabeçalho x-signature está ausente."}


@pytest.mark.django_db
def test_webhook_of_a_portuguese_site_answers_in_portuguese(client: Any, settings: Any) -> None:
    settings.LANGUAGE_CODE = "pt-br"  # Eduzz sends no Accept-Language: the site's language

    wrong = post_event(client, sample_payload("ping"), secret="not-the-key")
    broken = post_event(client, b"{not json")
    with immediate_on_commit():
        received = post_event(client, sample_payload("nutror.file_downloaded"))

    assert (wrong.status_code, wrong.json()) == (
        401,
        {"detail": "A assinatura do cabeçalho x-signature não confere com o corpo da requisição."},
    )
    assert (broken.status_code, broken.json()["detail"]) == (
        200,
        "O corpo da requisição não é um JSON válido.",
    )
    assert received.status_code == 200
    assert received.json()["detail"] == "Evento recebido."


@pytest.mark.django_db
def test_event_data_errors_are_stored_in_the_sites_language(client: Any, settings: Any) -> None:
    settings.LANGUAGE_CODE = "pt-br"
    payload = sample_payload("nutror.file_downloaded", learner={"email": "nobody"})
    del payload["data"]["lesson"]

    response = post_event(client, payload)

    assert response.json()["status"] == "failed"
    error = WebhookEvent.objects.get(event_id=payload["id"]).error
    assert "data.learner.email: Deve ser um endereço de e-mail." in error.splitlines()
    assert "data.lesson: Este campo é obrigatório." in error.splitlines()  # DRF's own message


# -- management commands in Portuguese ---------------------------------------------------


def help_text(name: str) -> str:
    """The command's ``--help``, without whitespace: argparse wraps lines where it likes."""
    command = load_command_class("eduzz_webhooks", name)
    return "".join(command.create_parser("manage.py", name).format_help().split())


def squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize(
    ("name", "argument_help"),
    [
        ("eduzz_erase_learner", "Apaga sem pedir confirmação."),
        ("eduzz_import", "Um arquivo JSON lines ou um array JSON de envelopes da Eduzz."),
        ("eduzz_prune_payloads", "Apenas conta os eventos que teriam o payload reduzido"),
        ("eduzz_replay", "Reprocessa todos os eventos com status 'com falha'."),
        ("eduzz_send_event", "Envia o id como está (para testar duplicados) em vez de um novo."),
    ],
)
def test_command_help_is_in_the_active_language(name: str, argument_help: str) -> None:
    command = load_command_class("eduzz_webhooks", name)
    with translation.override("pt-br"):
        portuguese = help_text(name)
    with translation.override("en"):
        english = help_text(name)

    description = translation_of(command.help)
    assert squeezed(description) in portuguese
    assert squeezed(argument_help) in portuguese
    assert squeezed(command.help) not in portuguese
    assert squeezed(command.help) in english  # English stays the default
    assert squeezed(argument_help) not in english


def test_every_command_is_checked_for_portuguese_help() -> None:
    shipped = sorted(
        path.stem
        for path in (PACKAGE / "management" / "commands").glob("*.py")
        if not path.stem.startswith("_")
    )
    assert shipped == COMMANDS
    for name in COMMANDS:
        assert translation_of(load_command_class("eduzz_webhooks", name).help)


@pytest.mark.django_db
def test_replay_reports_in_portuguese() -> None:
    event = WebhookEventFactory(event_type="sun.cart_abandoned", status=WebhookEvent.Status.FAILED)
    out = StringIO()

    with translation.override("pt-br"), immediate_on_commit():
        call_command("eduzz_replay", "--failed", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0] == f"{event.event_id}: processado"
    assert lines[2] == "  processado: 1"


@pytest.mark.django_db
def test_erasure_asks_and_understands_yes_in_portuguese(monkeypatch: pytest.MonkeyPatch) -> None:
    learner = LearnerFactory()
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "sim")

    with translation.override("pt-br"):
        call_command("eduzz_erase_learner", learner.email, stdout=StringIO())

    assert "Digite 'sim' para continuar, ou 'não' para cancelar: " in prompts[0]
    assert Learner.objects.get(pk=learner.pk).email.startswith("erased-")
