from __future__ import annotations

import sys
from types import SimpleNamespace

import django
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from eduzz_webhooks import checks
from eduzz_webhooks.checks import check_database, check_deploy, check_settings
from eduzz_webhooks.models import WebhookEvent


def ids(messages):
    return [m.id for m in messages]


def test_configured_secrets_pass(settings):
    assert check_settings() == []
    assert check_deploy() == []


def test_e001_no_secret_while_verifying(settings):
    settings.EDUZZ_WEBHOOKS = {}
    (error,) = check_settings()
    assert error.id == "eduzz_webhooks.E001"
    assert "EDUZZ_WEBHOOKS['SECRETS']" in error.msg


@pytest.mark.django_db(databases="__all__")  # check visits every alias (tests/settings.py has two)
def test_e001_shows_in_manage_py_check(settings):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": []}
    with pytest.raises(SystemCheckError, match=r"eduzz_webhooks\.E001"):
        call_command("check")


def test_no_secret_is_fine_when_verification_is_off(settings):
    settings.EDUZZ_WEBHOOKS = {"VERIFY_SIGNATURE": False}
    assert check_settings() == []


@pytest.mark.parametrize("secrets", [[""], [None], 42, ["ok-secret-000000000", 1]])
def test_e002_secrets_must_be_non_empty_strings(settings, secrets):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": secrets}
    assert ids(check_settings()) == ["eduzz_webhooks.E002"]


def test_a_single_string_is_accepted(settings):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": "one-single-secret-0000"}
    assert check_settings() == []


def test_e003_setting_must_be_a_dict(settings):
    settings.EDUZZ_WEBHOOKS = ["secret"]
    assert ids(check_settings()) == ["eduzz_webhooks.E003"]


def test_w001_verification_off_in_deploy(settings):
    settings.EDUZZ_WEBHOOKS = {"VERIFY_SIGNATURE": False}
    assert ids(check_deploy()) == ["eduzz_webhooks.W001"]


def test_w002_weak_secret_in_deploy(settings):
    settings.EDUZZ_WEBHOOKS = {"SECRETS": ["kiwi42"]}
    (warning,) = check_deploy()
    assert warning.id == "eduzz_webhooks.W002"
    assert "kiwi42" not in warning.msg + (warning.hint or "")  # never show the secret


def test_e005_background_needs_a_known_task_backend(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    assert check_settings() == []
    settings.EDUZZ_WEBHOOKS["TASK_BACKEND"] = "nope"
    assert ids(check_settings()) == ["eduzz_webhooks.E005"]


def test_w004_background_with_the_immediate_backend(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    immediate = "django.tasks.backends.immediate.ImmediateBackend"
    if django.VERSION < (6, 0):
        immediate = "django_tasks.backends.immediate.ImmediateBackend"
    settings.TASKS = {"default": {"BACKEND": immediate}}
    assert ids(check_settings()) == ["eduzz_webhooks.W004"]


def test_e004_background_needs_the_tasks_framework(settings, monkeypatch):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    # As on Django 5.2 without the django-tasks backport: neither module imports.
    monkeypatch.setitem(sys.modules, "django.tasks", None)
    monkeypatch.setitem(sys.modules, "django_tasks", None)
    assert ids(check_settings()) == ["eduzz_webhooks.E004"]


def test_w005_a_body_size_django_refuses(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "MAX_BODY_SIZE": 4 * 1024 * 1024}
    (warning,) = check_settings()
    assert warning.id == "eduzz_webhooks.W005"
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE (2621440)" in warning.msg
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
    assert check_settings() == []
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # Django's limit off
    assert check_settings() == []


def test_w003_unknown_keys_are_named(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "VERIFY_SIGNATURES": False}
    (warning,) = check_settings()
    assert warning.id == "eduzz_webhooks.W003"
    assert "'VERIFY_SIGNATURES'" in warning.msg


@pytest.mark.parametrize("zone", ["America/Sao_Paulox", "", 3])
def test_e006_unknown_time_zone(settings, zone):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "NAIVE_DATETIME_TIMEZONE": zone}
    assert ids(check_settings()) == ["eduzz_webhooks.E006"]


def test_e007_use_tz_is_required(settings):
    settings.USE_TZ = False
    assert ids(check_settings()) == ["eduzz_webhooks.E007"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_BODY_SIZE", 0),
        ("MAX_BODY_SIZE", None),
        ("MAX_BODY_SIZE", "1mb"),
        ("MAX_EVENT_AGE", True),
        ("MAX_EVENT_AGE", -5),
        ("MAX_EVENT_AGE", float("nan")),
        ("MAX_EVENT_AGE", "1h"),
        ("PAYLOAD_RETENTION_DAYS", -1),
        ("PAYLOAD_RETENTION_DAYS", 30.5),
    ],
)
def test_e008_numbers_must_be_whole_and_in_range(settings, key, value):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, key: value}
    (error,) = check_settings()
    assert error.id == "eduzz_webhooks.E008"
    assert repr(key) in error.msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_EVENT_AGE", None),
        ("MAX_EVENT_AGE", 86400),
        ("MAX_EVENT_AGE", 0.5),
        ("PAYLOAD_RETENTION_DAYS", 0),
        ("PAYLOAD_RETENTION_DAYS", 365_000),
        ("ATTEMPT_TIMEOUT", 31_536_000_000),
        ("MAX_BODY_SIZE", 10**30),
    ],
)
def test_valid_numbers_pass(settings, key, value):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, key: value}
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # no W005 for the largest body size
    assert check_settings() == []


@pytest.mark.parametrize("value", [0, -1, "5m", None, True])
def test_e008_attempt_timeout_must_be_seconds(settings, value):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "ATTEMPT_TIMEOUT": value}
    (error,) = check_settings()
    assert error.id == "eduzz_webhooks.E008"
    assert "'ATTEMPT_TIMEOUT'" in error.msg


@pytest.mark.parametrize(
    "key", ["MAX_BODY_SIZE", "MAX_EVENT_AGE", "PAYLOAD_RETENTION_DAYS", "ATTEMPT_TIMEOUT"]
)
def test_e008_a_number_too_large_for_a_float(settings, key):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, key: 10**400}
    (error,) = check_settings()  # was an OverflowError out of the check
    assert error.id == "eduzz_webhooks.E008"
    assert repr(key) in error.msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ATTEMPT_TIMEOUT", 10**11),  # passed; every re-delivery then answered 500
        ("ATTEMPT_TIMEOUT", 1e15),  # was an OverflowError out of the check
        ("PAYLOAD_RETENTION_DAYS", 10**9),  # passed; eduzz_prune_payloads then raised
    ],
)
def test_e008_a_duration_over_1000_years(settings, key, value):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, key: value}
    (error,) = check_settings()
    assert error.id == "eduzz_webhooks.E008"
    assert repr(key) in error.msg


# -- E009: the database the app writes to --------------------------------------------------


def database(vendor, json=True):
    """A connection as check_database sees it."""
    return SimpleNamespace(vendor=vendor, features=SimpleNamespace(supports_json_field=json))


class EventsElsewhere:
    """Writes the app's events to the ``events`` database."""

    def db_for_write(self, model, **hints):
        return "events" if model is WebhookEvent else None


@pytest.mark.django_db
def test_the_test_database_is_supported():
    assert check_database(databases=["default"]) == []


def test_e009_unsupported_database(monkeypatch):
    monkeypatch.setattr(checks, "connections", {"default": database("oracle")})
    (error,) = check_database(databases=["default"])
    assert error.id == "eduzz_webhooks.E009"
    assert "'default'" in error.msg
    assert "'oracle'" in error.msg
    assert all(name in error.hint for name in ("PostgreSQL", "MariaDB", "MySQL", "SQLite"))


def test_e009_database_without_json(monkeypatch):
    monkeypatch.setattr(checks, "connections", {"default": database("sqlite", json=False)})
    (error,) = check_database(databases=["default"])
    assert error.id == "eduzz_webhooks.E009"
    assert "'default' (sqlite)" in error.msg
    assert "JSON" in error.msg


def test_e009_inspects_only_the_databases_asked_for(monkeypatch):
    monkeypatch.setattr(checks, "connections", {"default": database("oracle")})
    assert check_database() == []
    assert check_database(databases=[]) == []
    assert check_database(databases=["other"]) == []


def test_e009_checks_the_database_the_router_writes_events_to(settings, monkeypatch):
    settings.DATABASE_ROUTERS = [EventsElsewhere()]
    monkeypatch.setattr(
        checks, "connections", {"default": database("sqlite"), "events": database("oracle")}
    )
    assert check_database(databases=["default"]) == []
    (error,) = check_database(databases=["default", "events"])
    assert "'events'" in error.msg


@pytest.mark.django_db
def test_e009_shows_in_manage_py_check(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "oracle")
    # Django 5.2 hands checks their databases only when asked (and always on migrate).
    with pytest.raises(SystemCheckError, match=r"eduzz_webhooks\.E009"):
        call_command("check", "--database", "default")
