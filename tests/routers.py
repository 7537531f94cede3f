"""A database router for tests of a project that gives the app a database of its own."""

from __future__ import annotations

from typing import Any


class OwnDatabase:
    """Routes the app's models, and django-tasks-db's tasks with them, to the ``events`` alias.

    As docs/deployment.rst asks of such a project: reads too, and the tasks with the events.
    """

    apps = {"eduzz_webhooks", "django_tasks_database"}  # django-tasks-db's label

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "events" if model._meta.app_label in self.apps else None

    db_for_write = db_for_read
