"""Task backends that stand for a broker (Celery, RQ): they keep tasks outside the database."""

from __future__ import annotations

from typing import Any

from django.db import connections, router

try:
    from django.tasks.backends.dummy import DummyBackend
except ImportError:  # Django 5.2: the backport
    from django_tasks.backends.dummy import DummyBackend


class BrokerDown(DummyBackend):
    """Every enqueue fails, as a broker's would when it is unreachable."""

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        raise ConnectionError("broker down")


class Recorder(DummyBackend):
    """Keeps, for each enqueue, whether it happened inside a transaction of the events' database."""

    in_transaction: list[bool] = []

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        from eduzz_webhooks.models import WebhookEvent

        events = connections[router.db_for_write(WebhookEvent)]
        self.in_transaction.append(events.in_atomic_block)
        return super().enqueue(task, args, kwargs)


class Registry(DummyBackend):
    """Keeps the path of every task it validates, as a backend with a task registry would."""

    validated: list[str] = []

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        self.validated.append(task.module_path)
