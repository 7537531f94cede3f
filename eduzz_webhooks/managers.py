"""Query helpers of the app's models."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


class EntityManager(models.Manager[_M]):
    """Rows that many events share: producers, courses, lessons, learners."""

    def ensure(self, key: dict[str, Any], values: dict[str, Any]) -> _M:
        """The row with ``key``, created with ``values`` or brought up to date with them.

        ``values`` are given by attribute name (``producer_id``, not
        ``producer``), so comparing them loads no related row. A row that
        exists is read without a lock and written only when a value changed:
        deliveries that name the same course or producer, as every download
        of a launch does, never wait for each other's row locks.
        """
        row, created = self.get_or_create(**key, defaults=values)
        if not created:
            changed = {name: value for name, value in values.items() if getattr(row, name) != value}
            if changed:
                self.filter(pk=row.pk).update(**changed)
                for name, value in changed.items():
                    setattr(row, name, value)
        return row
