"""What the app keeps: every authentic event, and the records built from them.

Uniqueness and indexes are declared in each ``Meta``, as constraints and plain
indexes: a CharField's ``unique=True`` or ``db_index=True`` would also make
PostgreSQL keep a second ``_like`` index, extra work on every insert for
lookups this app never makes. Foreign keys that lead a composite index or
constraint get no index of their own, for the same reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def _concrete(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, models.Field), name
    assert field.column, name
    return field


def _columns(connection: BaseDatabaseWrapper, fields: Iterable[models.Field[Any, Any]]) -> str:
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)


_M = TypeVar("_M", bound=models.Model)


class EntityQuerySet(models.QuerySet[_M]):
    """Rows that many events share (producers, courses, lessons, learners)."""

    def ensure(self, key: dict[str, Any], values: dict[str, Any], update: Iterable[str]) -> _M:
        """Get or create the row with ``key``, bringing its ``update`` fields up to ``values``.

        On PostgreSQL one statement finds or inserts the row without locking
        it; only a row whose fields really change is then updated (and so
        locked until commit). During a launch every download names the same
        course and producer: an upsert that always writes would make their
        deliveries wait for each other. SQLite has no row locks (one writer at
        a time), so there a single ``INSERT ... ON CONFLICT DO UPDATE`` does.
        """
        obj = self.model(**key, **values)
        connection = connections[self.db]
        update = list(update)
        if connection.vendor != "postgresql":
            (obj,) = self.bulk_create(
                [obj], update_conflicts=True, unique_fields=list(key), update_fields=update
            )
            return obj
        fields = [_concrete(self.model, name) for name in (*key, *values)]
        key_fields = fields[: len(key)]
        out = [_concrete(self.model, "pk"), *(_concrete(self.model, name) for name in update)]
        table = connection.ops.quote_name(self.model._meta.db_table)
        returning = _columns(connection, out)
        where = " AND ".join(f"{_columns(connection, [f])} = %s" for f in key_fields)
        sql = (
            f"WITH new AS (INSERT INTO {table} ({_columns(connection, fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({_columns(connection, key_fields)}) DO NOTHING "
            f"RETURNING {returning}) "
            f"SELECT {returning} FROM new UNION ALL "
            f"SELECT {returning} FROM {table} WHERE {where} LIMIT 1"
        )
        params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
        with connection.cursor() as cursor:
            # A row inserted by a transaction that committed after this
            # statement's snapshot is invisible to it: ask again.
            for _attempt in range(3):
                cursor.execute(sql, params + params[: len(key_fields)])
                row = cursor.fetchone()
                if row is not None:
                    break
            else:
                raise ObjectDoesNotExist(f"{self.model.__name__} {key} vanished")
        obj.pk = row[0]
        obj._state.adding = False
        obj._state.db = self.db
        changed = {
            f.attname: getattr(obj, f.attname)
            for f, current in zip(out[1:], row[1:], strict=True)
            if f.to_python(current) != getattr(obj, f.attname)
        }
        if changed:
            self.filter(pk=obj.pk).update(**changed)
        return obj


class WebhookEventManager(models.Manager["WebhookEvent"]):
    # Manager methods, not QuerySet ones: every delivery calls them, and a
    # QuerySet built for nothing costs as much as the rest of the call.
    def insert_if_new(self, **values: Any) -> WebhookEvent | None:
        """Insert an event unless its ``event_id`` is stored already.

        One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement: the unique
        constraint decides, so concurrent deliveries of one event store it once,
        without a check-then-insert race. Returns the new event, or ``None`` for
        a duplicate. Works on PostgreSQL and SQLite 3.35+.
        """
        return self._insert_if_new(values)[0]

    def insert_if_new_seeing_drain(
        self, requested_since: dt.datetime, **values: Any
    ) -> tuple[WebhookEvent | None, bool]:
        """:meth:`insert_if_new`, and whether a drain was requested since ``requested_since``.

        Both in one statement. The second is read in that statement's snapshot,
        before the event is committed (see ``eduzz_webhooks.tasks`` for why
        that is enough); it is ``False`` for a duplicate.
        """
        event, seen = self._insert_if_new(values, requested_since)
        return event, bool(seen)

    def _insert_if_new(
        self, values: dict[str, Any], requested_since: dt.datetime | None = None
    ) -> tuple[WebhookEvent | None, Any]:
        db = self._db or router.db_for_write(self.model)
        connection = connections[db]
        event = self.model(**values)
        seeing_drain = requested_since is not None
        sql, fields = _insert_if_new_sql(connection, seeing_drain)
        params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
        if seeing_drain:
            requested_at = _concrete(DrainRequest, "requested_at")
            params += [requested_at.get_db_prep_value(requested_since, connection), DrainRequest.PK]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None, None
        event.pk = row[0]
        event._state.adding = False
        event._state.db = db
        return event, row[1] if seeing_drain else None


_INSERT_SQL: dict[tuple[str, bool], tuple[str, list[models.Field[Any, Any]]]] = {}


def _insert_if_new_sql(
    connection: BaseDatabaseWrapper, seeing_drain: bool
) -> tuple[str, list[models.Field[Any, Any]]]:
    """The statement of ``insert_if_new`` and the fields of its parameters, built once."""
    key = (connection.vendor, seeing_drain)
    if key not in _INSERT_SQL:
        meta = WebhookEvent._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        sql = (
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "
            f"({_columns(connection, fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({_columns(connection, [_concrete(WebhookEvent, 'event_id')])}) "
            f"DO NOTHING RETURNING {_columns(connection, [_concrete(WebhookEvent, 'pk')])}"
        )
        if seeing_drain:
            requested_at = _concrete(DrainRequest, "requested_at")
            sql += (
                f", (SELECT {_columns(connection, [requested_at])} > %s"
                f" FROM {connection.ops.quote_name(DrainRequest._meta.db_table)}"
                f" WHERE {_columns(connection, [_concrete(DrainRequest, 'pk')])} = %s)"
            )
        _INSERT_SQL[key] = sql, fields
    return _INSERT_SQL[key]


class WebhookEvent(models.Model):
    """One authentic delivery from Eduzz, stored before any processing."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("received")
        PROCESSED = "processed", _("processed")
        FAILED = "failed", _("failed")

    event_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(_("event type"), max_length=255)
    payload = models.JSONField(_("payload"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    # When the last processing attempt started; empty while queued for a task.
    # An attempt that started long ago without finishing was cut short (a
    # crashed worker): only then may ``eduzz_replay --pending`` take it over.
    claimed_at = models.DateTimeField(_("processing started at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("processing attempts"), default=0)

    objects = WebhookEventManager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]
        permissions = [("replay_webhookevent", _("Can replay webhook events"))]
        constraints = [models.UniqueConstraint(fields=["event_id"], name="eduzz_event_id_unique")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="eduzz_event_status_idx"),
            models.Index(fields=["event_type"], name="eduzz_event_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class DrainRequest(models.Model):
    """Background mode's bookkeeping: whether a ``drain`` task waits in the queue.

    One row. The delivery that enqueues a drain sets ``requested_at``; the
    drain clears it when it starts, so that the next delivery enqueues
    another. Deliveries in between enqueue nothing: the waiting drain will
    see their events. How that loses no event: ``eduzz_webhooks.tasks``.
    """

    requested_at = models.DateTimeField(_("requested at"), null=True, blank=True)

    PK = 1  # the primary key of the one row

    class Meta:
        verbose_name = _("drain request")
        verbose_name_plural = _("drain requests")
        default_permissions = ()

    def __str__(self) -> str:
        return f"drain requested at {self.requested_at}"


class Producer(models.Model):
    """The course owner on Eduzz, identified by e-mail."""

    email = models.CharField(_("e-mail"), max_length=254)
    name = models.TextField(_("name"), blank=True)
    eduzz_id = models.CharField(_("Eduzz id"), max_length=64, blank=True)

    objects = EntityQuerySet["Producer"].as_manager()

    class Meta:
        verbose_name = _("producer")
        verbose_name_plural = _("producers")
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["email"], name="eduzz_producer_email_unique")
        ]

    def __str__(self) -> str:
        return self.name or self.email


class Course(models.Model):
    """A Nutror course, identified by its hash."""

    hash = models.CharField(_("hash"), max_length=255)
    title = models.TextField(_("title"), blank=True)
    producer = models.ForeignKey(
        Producer,
        verbose_name=_("producer"),
        related_name="courses",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )

    objects = EntityQuerySet["Course"].as_manager()

    class Meta:
        verbose_name = _("course")
        verbose_name_plural = _("courses")
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["hash"], name="eduzz_course_hash_unique")]

    def __str__(self) -> str:
        return self.title or self.hash


class Lesson(models.Model):
    """A lesson of a course; its id is unique within the course."""

    course = models.ForeignKey(
        Course,
        verbose_name=_("course"),
        related_name="lessons",
        on_delete=models.PROTECT,
        db_index=False,
    )
    external_id = models.CharField(_("Eduzz lesson id"), max_length=255)
    title = models.TextField(_("title"), blank=True)

    objects = EntityQuerySet["Lesson"].as_manager()

    class Meta:
        verbose_name = _("lesson")
        verbose_name_plural = _("lessons")
        ordering = ["course", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "external_id"], name="eduzz_lesson_unique_per_course"
            )
        ]

    def __str__(self) -> str:
        return self.title or self.external_id


class Learner(models.Model):
    """A student. ``email`` is stored lowercased, so it is unique case-insensitively."""

    email = models.CharField(_("e-mail"), max_length=254)
    name = models.TextField(_("name"), blank=True)

    objects = EntityQuerySet["Learner"].as_manager()

    class Meta:
        verbose_name = _("learner")
        verbose_name_plural = _("learners")
        ordering = ["email"]
        permissions = [("erase_learner", _("Can erase a learner's personal data (LGPD)"))]
        constraints = [models.UniqueConstraint(fields=["email"], name="eduzz_learner_email_unique")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class FileDownload(models.Model):
    """A learner downloaded a lesson's file (``nutror.file_downloaded``)."""

    event = models.OneToOneField(
        WebhookEvent,
        verbose_name=_("event"),
        related_name="file_download",
        on_delete=models.PROTECT,
    )
    learner = models.ForeignKey(
        Learner,
        verbose_name=_("learner"),
        related_name="downloads",
        on_delete=models.PROTECT,
        db_index=False,
    )
    course = models.ForeignKey(
        Course,
        verbose_name=_("course"),
        related_name="downloads",
        on_delete=models.PROTECT,
        db_index=False,
    )
    lesson = models.ForeignKey(
        Lesson, verbose_name=_("lesson"), related_name="downloads", on_delete=models.PROTECT
    )
    producer = models.ForeignKey(
        Producer, verbose_name=_("producer"), related_name="downloads", on_delete=models.PROTECT
    )
    downloaded_at = models.DateTimeField(_("downloaded at"))

    class Meta:
        verbose_name = _("file download")
        verbose_name_plural = _("file downloads")
        ordering = ["-downloaded_at"]
        indexes = [
            models.Index(fields=["-downloaded_at"], name="eduzz_download_date_idx"),
            models.Index(fields=["course", "-downloaded_at"], name="eduzz_download_course_idx"),
            models.Index(fields=["learner", "-downloaded_at"], name="eduzz_download_learner_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.learner} · {self.lesson} · {self.downloaded_at:%Y-%m-%d %H:%M}"
