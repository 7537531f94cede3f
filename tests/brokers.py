"""A task backend whose broker is down: every enqueue fails, as Celery's or RQ's would."""

from __future__ import annotations

from typing import Any

try:
    from django.tasks.backends.dummy import DummyBackend
except ImportError:  # Django 5.2: the backport
    from django_tasks.backends.dummy import DummyBackend


class BrokerDown(DummyBackend):
    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        raise ConnectionError("broker down")
