"""System checks: misconfiguration shows in ``manage.py check``, not in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

MIN_SECRET_LENGTH = 16


@register(Tags.security)
def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = getattr(settings, "EDUZZ_WEBHOOKS", {}) or {}
    if not isinstance(config, dict):
        return [
            Error(
                "The EDUZZ_WEBHOOKS setting must be a dict.",
                hint='EDUZZ_WEBHOOKS = {"SECRETS": ["<key from the Eduzz panel>"]}',
                id="eduzz_webhooks.E003",
            )
        ]
    secrets = config.get("SECRETS", [])
    if isinstance(secrets, str):
        secrets = [secrets]
    if not isinstance(secrets, (list, tuple)) or not all(
        isinstance(s, (str, bytes)) and s for s in secrets
    ):
        return [
            Error(
                "EDUZZ_WEBHOOKS['SECRETS'] must be a list of non-empty strings.",
                hint="Copy each key from the Eduzz panel (Configurações > Chaves).",
                id="eduzz_webhooks.E002",
            )
        ]
    messages: list[CheckMessage] = []
    verify = config.get("VERIFY_SIGNATURE", True)
    if verify and not secrets:
        messages.append(
            Error(
                "EDUZZ_WEBHOOKS['SECRETS'] is empty, so every webhook would be refused.",
                hint="Add the key from the Eduzz panel to EDUZZ_WEBHOOKS['SECRETS'], or set "
                "EDUZZ_WEBHOOKS['VERIFY_SIGNATURE'] = False for local development only.",
                id="eduzz_webhooks.E001",
            )
        )
    if config.get("PROCESS_IN_BACKGROUND"):
        messages.extend(_check_tasks(config.get("TASK_BACKEND", "default")))
    return messages


def _check_tasks(alias: str) -> list[CheckMessage]:
    try:
        from django.tasks import task_backends  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from django_tasks import task_backends  # type: ignore[no-redef,unused-ignore]
        except ImportError:
            return [
                Error(
                    "EDUZZ_WEBHOOKS['PROCESS_IN_BACKGROUND'] needs Django's Tasks framework.",
                    hint="Use Django 6, or install the backport: pip install "
                    "'django-eduzz-webhooks[tasks]'.",
                    id="eduzz_webhooks.E004",
                )
            ]
    if alias not in task_backends.settings:
        return [
            Error(
                f"EDUZZ_WEBHOOKS['TASK_BACKEND'] is {alias!r}, which the TASKS setting does "
                "not define.",
                hint="Name a backend of the TASKS setting, or add one under that name.",
                id="eduzz_webhooks.E005",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = getattr(settings, "EDUZZ_WEBHOOKS", {}) or {}
    if not isinstance(config, dict):
        return []
    messages: list[CheckMessage] = []
    if not config.get("VERIFY_SIGNATURE", True):
        messages.append(
            Warning(
                "EDUZZ_WEBHOOKS['VERIFY_SIGNATURE'] is False: anybody can post forged events.",
                hint="Remove it (the default is True) outside local development.",
                id="eduzz_webhooks.W001",
            )
        )
    secrets = config.get("SECRETS", [])
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    if isinstance(secrets, (list, tuple)) and any(
        isinstance(s, (str, bytes)) and 0 < len(s) < MIN_SECRET_LENGTH for s in secrets
    ):
        messages.append(
            Warning(
                f"A key in EDUZZ_WEBHOOKS['SECRETS'] is shorter than {MIN_SECRET_LENGTH} "
                "characters, so it is easy to guess.",
                hint="Create a new key in the Eduzz panel and use it here.",
                id="eduzz_webhooks.W002",
            )
        )
    return messages
