"""Query helpers of the app's models."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import IntegrityError, OperationalError, models, transaction
from django.db.transaction import TransactionManagementError

_M = TypeVar("_M", bound=models.Model)


class EntityManager(models.Manager[_M]):
    """Rows that many events share: producers, courses, lessons, learners."""

    def ensure(self, key: dict[str, Any], values: dict[str, Any], *, absent: bool = False) -> _M:
        """The row with ``key``, created with ``values`` or brought up to date with them.

        ``values`` are given by attribute name (``producer_id``, not
        ``producer``), so comparing them loads no related row. A row that
        exists is read without a lock and written only when a value changed:
        deliveries that name the same course or producer, as every download
        of a launch does, never wait for each other's row locks. With
        ``absent`` (the caller just found no such row) it is created without
        reading it first, unless a concurrent delivery created it meanwhile.
        """
        try:
            if absent:
                try:
                    with transaction.atomic(using=self.db):
                        return self.create(**key, **values)
                except IntegrityError:
                    pass  # created meanwhile: found below
            row, created = self.get_or_create(**key, defaults=values)
        except TransactionManagementError as exc:
            # get_or_create's second read, after its insert and the rollback to its
            # savepoint both failed: the server lost the transaction (a killed
            # connection, seen on MariaDB). The database is unavailable, not the data bad.
            raise OperationalError("The database lost the transaction.") from exc
        return row if created else self.bring_up_to_date(row, values)

    def bring_up_to_date(self, row: _M, values: dict[str, Any]) -> _M:
        """``row`` with ``values`` (by attribute name), written only where one changed."""
        changed = {name: value for name, value in values.items() if getattr(row, name) != value}
        if changed:
            self.filter(pk=row.pk).update(**changed)
            for name, value in changed.items():
                setattr(row, name, value)
        return row
