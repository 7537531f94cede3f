from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.dispatch import Signal

from eduzz_webhooks import signals
from eduzz_webhooks.testing import post_event


class SignalLog:
    """Records every send of the app's signals while connected."""

    def __init__(self) -> None:
        self.calls: list[tuple[Signal, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def receiver(self, signal: Signal, sender: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append((signal, kwargs))

    def of(self, signal: Signal) -> list[dict[str, Any]]:
        return [kwargs for s, kwargs in self.calls if s is signal]


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    connected = []
    for signal in (signals.file_downloaded, signals.event_received):

        def receiver(sender: Any, _signal: Signal = signal, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            log.receiver(_signal, sender, **kwargs)

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield log
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def connect() -> Iterator[Callable[[Signal, Callable[..., Any]], None]]:
    """Connect a receiver for one test; it is always disconnected after."""
    connected: list[tuple[Signal, Callable[..., Any]]] = []

    def connect(signal: Signal, receiver: Callable[..., Any]) -> None:
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def deliver(client: Any, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Post a signed event; on-commit work (the signals) runs as it would in production."""

    def deliver(payload: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client, payload, **kwargs)

    return deliver


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if is_postgres():
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (EDUZZ_TEST_DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
