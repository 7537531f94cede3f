"""pytest fixtures for testing receivers of Eduzz events (docs/testing.rst); needs pytest-django.

Not loaded automatically: enable it with ``pytest_plugins = ["eduzz_webhooks.pytest_plugin"]``
in your ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.test import Client

    from .testing import SignalCapture

# ``eduzz_webhooks.testing`` imports the models, so it is imported in the
# fixtures: a host may set Django up after its conftest has been read.


@pytest.fixture
def eduzz_event() -> Callable[..., dict[str, Any]]:
    """:func:`eduzz_webhooks.testing.build_payload`."""
    from .testing import build_payload

    return build_payload


@pytest.fixture
def eduzz_post(client: Client) -> Callable[..., Any]:
    """Post a payload to the webhook, signed; its signals are sent before it returns."""
    from django.db import router

    from .models import WebhookEvent
    from .testing import immediate_on_commit, post_event

    def post(payload: Any, **kwargs: Any) -> Any:
        # The signals wait for the commit of the database the app writes to.
        with immediate_on_commit(router.db_for_write(WebhookEvent)):
            return post_event(client, payload, **kwargs)

    return post


@pytest.fixture
def eduzz_signals() -> Iterator[SignalCapture]:
    """What ``file_downloaded`` and ``event_received`` sent during the test."""
    from .testing import capture

    with capture() as captured:
        yield captured
