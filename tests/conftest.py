from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import connection, connections
from django.test import Client

from eduzz_webhooks.testing import SignalCapture

# The fixtures host projects get (eduzz_event, eduzz_post, eduzz_signals),
# pytester to run a host-like test session in tests/test_testing.py, and the
# personal data that the privacy tests and their commands' tests share.
pytest_plugins = ["pytester", "eduzz_webhooks.pytest_plugin", "tests.personal_data"]

# Time zones that push dates furthest from UTC: far west and far east; the default zone of
# naive dates (with past daylight saving time); Manila and Metlakatla, whose local mean times
# (-15:56, +15:13) are their offsets in the earliest years.
EXTREME_ZONES = [
    "Etc/GMT+12",
    "Pacific/Kiritimati",
    "America/Sao_Paulo",
    "Asia/Manila",
    "America/Metlakatla",
]


def date_choices(response: Any, field: str) -> dict[str, dict[str, str]]:
    """``{title: query}`` of an admin list's date filter on ``field`` (Django's), but "Any date".

    ``response``: the list's page.
    """
    cl = response.context["cl"]
    (spec,) = [f for f in cl.filter_specs if getattr(f, "field_path", None) == field]
    assert isinstance(spec, admin.DateFieldListFilter)
    choices = {str(c["display"]): dict(parse_qsl(c["query_string"][1:])) for c in spec.choices(cl)}
    assert list(choices) == ["Any date", "Today", "Past 7 days", "This month", "This year"]
    return {title: query for title, query in choices.items() if query}


@pytest.fixture
def signal_log(eduzz_signals: SignalCapture) -> SignalCapture:
    """What the app's signals sent during the test (``.calls``, ``.of(signal)``)."""
    return eduzz_signals


@pytest.fixture
def connect(eduzz_signals: SignalCapture) -> Callable[..., None]:
    """Connect a receiver for one test: ``connect(signal, receiver)``; always disconnected."""
    return eduzz_signals.connect


@pytest.fixture
def deliver(eduzz_post: Callable[..., Any]) -> Callable[..., Any]:
    """Post a signed event; on-commit work (the signals) runs as it would in production."""
    return eduzz_post


@pytest.fixture
def viewer(client: Client) -> Client:
    """The test client, logged in as staff with only the view permissions of this app."""
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="eduzz_webhooks", codename__startswith="view_"
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def own_database(settings: Any) -> Any:
    """The app's models routed to the ``events`` alias: the same database, another connection.

    Tests that use it mark ``django_db(databases=["default", "events"])``.
    """
    from tests.routers import OwnDatabase

    settings.DATABASE_ROUTERS = [OwnDatabase()]
    yield
    connections["events"].close()


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    vendor = connection.vendor
    postgres = pytest.mark.skip(reason="needs PostgreSQL (EDUZZ_TEST_DATABASE_URL)")
    server = pytest.mark.skip(reason="needs PostgreSQL or MariaDB (EDUZZ_TEST_DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords and vendor != "postgresql":
            item.add_marker(postgres)
        elif "concurrency" in item.keywords and vendor == "sqlite":
            item.add_marker(server)
