"""System checks: misconfiguration shows in ``manage.py check``, not in production."""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections, router

from .conf import DEFAULTS
from .models import WebhookEvent

MIN_SECRET_LENGTH = 16

# The databases the app is tested on, by Django's vendor name (MariaDB's is "mysql").
SUPPORTED_DATABASES = {"postgresql": "PostgreSQL", "mysql": "MariaDB, MySQL", "sqlite": "SQLite"}


@register(Tags.security)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
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
    messages.extend(_check_values(config))
    return messages


def _check_values(config: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                f"EDUZZ_WEBHOOKS has unknown keys: {', '.join(map(repr, unknown))}.",
                hint=f"The known keys are: {', '.join(DEFAULTS)}. Check the spelling.",
                id="eduzz_webhooks.W003",
            )
        )
    zone = config.get("NAIVE_DATETIME_TIMEZONE", DEFAULTS["NAIVE_DATETIME_TIMEZONE"])
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        messages.append(
            Error(
                f"EDUZZ_WEBHOOKS['NAIVE_DATETIME_TIMEZONE'] is {zone!r}, which is not a time "
                "zone this system knows.",
                hint="Use an IANA name such as 'America/Sao_Paulo' (install the tzdata "
                "package where the system has no time zone database).",
                id="eduzz_webhooks.E006",
            )
        )
    if not settings.USE_TZ:
        messages.append(
            Error(
                "eduzz_webhooks needs USE_TZ = True: Eduzz sends dates in several time zones.",
                hint="Set USE_TZ = True (the default since Django 5.0).",
                id="eduzz_webhooks.E007",
            )
        )
    # (key, accepted types, minimum, None allowed); the types are those conf.py reads.
    for key, types, minimum, optional in (
        ("MAX_BODY_SIZE", (int,), 1, False),
        ("MAX_EVENT_AGE", (int, float), 0.001, True),
        ("PAYLOAD_RETENTION_DAYS", (int,), 0, True),
    ):
        value = config.get(key, DEFAULTS[key])
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or not value >= minimum:
            kind = "a whole number" if types == (int,) else "a number of seconds"
            messages.append(
                Error(
                    f"EDUZZ_WEBHOOKS[{key!r}] must be {kind} of at least {minimum}"
                    + (" or None." if optional else "."),
                    hint=f"It is {value!r}; see the settings reference.",
                    id="eduzz_webhooks.E008",
                )
            )
    return messages


def _check_tasks(alias: str) -> list[CheckMessage]:
    try:
        from django.tasks import task_backends  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from django_tasks import task_backends  # type: ignore[no-redef,assignment,unused-ignore]
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
    if str(task_backends.settings[alias].get("BACKEND", "")).endswith(".ImmediateBackend"):
        return [
            Warning(
                "EDUZZ_WEBHOOKS['PROCESS_IN_BACKGROUND'] is on with ImmediateBackend, which "
                "processes events in the request that stores them, and more slowly.",
                hint="Use a backend with workers (django-tasks-db, RQ, Celery), or turn "
                "PROCESS_IN_BACKGROUND off.",
                id="eduzz_webhooks.W004",
            )
        ]
    return []


@register(Tags.compatibility)
def check_database(
    app_configs: Any = None, databases: Collection[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The database the app's events are written to is one it supports (E009).

    Inspected only when the caller names it among ``databases``, as Django's own database
    checks do (``manage.py check`` names them all). Versions are left to Django, which
    refuses to connect to a server older than it supports.
    """
    alias = router.db_for_write(WebhookEvent)
    if not databases or alias not in databases:
        return []
    connection = connections[alias]
    supported = ", ".join(SUPPORTED_DATABASES.values())
    if connection.vendor not in SUPPORTED_DATABASES:
        return [
            Error(
                f"eduzz_webhooks writes to the database {alias!r}, whose vendor "
                f"{connection.vendor!r} it does not support.",
                hint=f"Use one of {supported} for the app's models (DATABASES, or "
                "DATABASE_ROUTERS to give them a database of their own).",
                id="eduzz_webhooks.E009",
            )
        ]
    if not connection.features.supports_json_field:
        return [
            Error(
                f"eduzz_webhooks writes to the database {alias!r} ({connection.vendor}), "
                "which lacks the JSON support that stored events need.",
                hint=f"Use one of {supported} with JSON support; SQLite needs its JSON1 "
                "extension (built in since SQLite 3.38).",
                id="eduzz_webhooks.E009",
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
