"""System checks: misconfiguration shows in ``manage.py check``, not in production."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router

from .conf import DEFAULTS, conf
from .models import WebhookEvent

MIN_SECRET_LENGTH = 16

# The id and hint of the error for a setting conf refuses; the others it can refuse are numbers.
SETTING_ERRORS = {
    "SECRETS": ("E002", "Copy each key from the Eduzz panel (Configurações > Chaves)."),
    "NAIVE_DATETIME_TIMEZONE": (
        "E006",
        "Use an IANA name such as 'America/Sao_Paulo' (install the tzdata package where the "
        "system has no time zone database).",
    ),
}
NUMBER_ERROR = ("E008", "See the settings reference.")

# The databases the app is tested on, by Django's vendor name (MariaDB's is "mysql").
SUPPORTED_DATABASES = {"postgresql": "PostgreSQL", "mysql": "MariaDB, MySQL", "sqlite": "SQLite"}


@register(Tags.security)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        user_settings = conf.user_settings
    except ImproperlyConfigured as exc:  # nothing else can be read
        hint = 'EDUZZ_WEBHOOKS = {"SECRETS": ["<key from the Eduzz panel>"]}'
        return [Error(str(exc), hint=hint, id="eduzz_webhooks.E003")]
    messages: list[CheckMessage] = []
    refused: set[str] = set()
    for name in DEFAULTS:
        try:
            getattr(conf, name)
        except ImproperlyConfigured as exc:
            code, hint = SETTING_ERRORS.get(name, NUMBER_ERROR)
            messages.append(Error(str(exc), hint=hint, id=f"eduzz_webhooks.{code}"))
            refused.add(name)
    if "SECRETS" not in refused and conf.VERIFY_SIGNATURE and not conf.SECRETS:
        messages.append(
            Error(
                "EDUZZ_WEBHOOKS['SECRETS'] is empty, so every webhook would be refused.",
                hint="Add the key from the Eduzz panel to EDUZZ_WEBHOOKS['SECRETS'], or set "
                "EDUZZ_WEBHOOKS['VERIFY_SIGNATURE'] = False for local development only.",
                id="eduzz_webhooks.E001",
            )
        )
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size = None if "MAX_BODY_SIZE" in refused else conf.MAX_BODY_SIZE
    if size is not None and django_limit is not None and size > django_limit:
        messages.append(
            Warning(
                f"EDUZZ_WEBHOOKS['MAX_BODY_SIZE'] ({size}) is larger than "
                f"DATA_UPLOAD_MAX_MEMORY_SIZE ({django_limit}): Django refuses the bodies "
                "between the two, and the endpoint answers them 413.",
                hint="Raise DATA_UPLOAD_MAX_MEMORY_SIZE to at least MAX_BODY_SIZE.",
                id="eduzz_webhooks.W005",
            )
        )
    unknown = sorted(set(user_settings) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                f"EDUZZ_WEBHOOKS has unknown keys: {', '.join(map(repr, unknown))}.",
                hint=f"The known keys are: {', '.join(DEFAULTS)}. Check the spelling.",
                id="eduzz_webhooks.W003",
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
    if conf.PROCESS_IN_BACKGROUND:
        messages.extend(_check_tasks(conf.TASK_BACKEND))
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
    backend = task_backends.settings.get(alias)
    if backend is None:
        return [
            Error(
                f"EDUZZ_WEBHOOKS['TASK_BACKEND'] is {alias!r}, which the TASKS setting does "
                "not define.",
                hint="Name a backend of the TASKS setting, or add one under that name.",
                id="eduzz_webhooks.E005",
            )
        ]
    if str(backend.get("BACKEND", "")).endswith(".ImmediateBackend"):
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

    Only when the caller names it among ``databases``, as for Django's own database checks;
    versions are left to Django, which refuses servers older than it supports.
    """
    alias = router.db_for_write(WebhookEvent)
    if not databases or alias not in databases:
        return []
    vendor = connections[alias].vendor
    if vendor not in SUPPORTED_DATABASES:
        problem = f"whose vendor {vendor!r} it does not support"
    elif not connections[alias].features.supports_json_field:
        problem = f"({vendor}), which lacks the JSON support that stored events need"
    else:
        return []
    return [
        Error(
            f"eduzz_webhooks writes to the database {alias!r} {problem}.",
            hint=f"Use one of {', '.join(SUPPORTED_DATABASES.values())} with JSON support "
            "(SQLite has it built in since 3.38) for the app's models: DATABASES, or "
            "DATABASE_ROUTERS to give them a database of their own.",
            id="eduzz_webhooks.E009",
        )
    ]


@register(Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        verify, secrets = conf.VERIFY_SIGNATURE, conf.SECRETS
    except ImproperlyConfigured:
        return []  # check_settings reports it
    messages: list[CheckMessage] = []
    if not verify:
        messages.append(
            Warning(
                "EDUZZ_WEBHOOKS['VERIFY_SIGNATURE'] is False: anybody can post forged events.",
                hint="Remove it (the default is True) outside local development.",
                id="eduzz_webhooks.W001",
            )
        )
    if any(len(secret) < MIN_SECRET_LENGTH for secret in secrets):
        messages.append(
            Warning(
                f"A key in EDUZZ_WEBHOOKS['SECRETS'] is shorter than {MIN_SECRET_LENGTH} "
                "characters, so it is easy to guess.",
                hint="Create a new key in the Eduzz panel and use it here.",
                id="eduzz_webhooks.W002",
            )
        )
    return messages
