"""pytest fixtures for testing receivers of Eduzz events; needs pytest-django.

Not loaded automatically: enable it in your ``conftest.py`` with::

    pytest_plugins = ["eduzz_webhooks.pytest_plugin"]

* ``eduzz_event(event_type, **overrides)``: a new valid payload of that type
  (see :func:`eduzz_webhooks.testing.build_payload`).
* ``eduzz_post(payload, **kwargs)``: POST it, signed, with Django's test
  client; the signals are sent as in production, even inside the test's
  transaction.
* ``eduzz_signals``: a :class:`eduzz_webhooks.testing.SignalCapture` of the
  app's signals for the test.
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
    """Build a payload: ``eduzz_event("nutror.file_downloaded", data__learner__email=...)``."""
    from .testing import build_payload

    return build_payload


@pytest.fixture
def eduzz_post(client: Client) -> Callable[..., Any]:
    """Post a payload (dict or bytes) to the webhook, signed; returns the response.

    Keyword arguments go to :func:`eduzz_webhooks.testing.post_event`
    (``secret=``, ``url=``, ``headers=``). The request's on-commit callbacks,
    the signals among them, run as the commit would run them, even inside the
    test's transaction (:func:`eduzz_webhooks.testing.immediate_on_commit`).
    """
    from .testing import immediate_on_commit, post_event

    def post(payload: Any, **kwargs: Any) -> Any:
        with immediate_on_commit():
            return post_event(client, payload, **kwargs)

    return post


@pytest.fixture
def eduzz_signals() -> Iterator[SignalCapture]:
    """What ``file_downloaded`` and ``event_received`` sent during the test."""
    from .testing import capture

    with capture() as captured:
        yield captured
