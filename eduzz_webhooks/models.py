"""What the app keeps: every authentic event, and the records built from them.

Uniqueness and indexes are declared in each ``Meta``, as constraints and plain
indexes: a CharField's ``unique=True`` or ``db_index=True`` would also make
PostgreSQL keep a second ``_like`` index, extra work on every insert for
lookups this app never makes. Foreign keys that lead a composite index or
constraint get no index of their own, for the same reason.
"""

from __future__ import annotations

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
        The statement is built once per model and set of fields: on SQLite the
        whole transaction holds the database's write lock, so the less Python
        inside it, the less other deliveries wait.
        """
        obj = self.model(**key, **values)
        connection = connections[self.db]
        postgres = connection.vendor == "postgresql"
        sql, fields, out = _ensure_sql(
            connection, self.model, tuple(key), tuple(values), tuple(update)
        )
        params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
        with connection.cursor() as cursor:
            # PostgreSQL: a row inserted by a transaction that committed after
            # this statement's snapshot is invisible to it: ask again.
            for _attempt in range(3 if postgres else 1):
                cursor.execute(sql, params + params[: len(key)] if postgres else params)
                row = cursor.fetchone()
                if row is not None:
                    break
            else:
                raise ObjectDoesNotExist(f"{self.model.__name__} {key} vanished")
        obj.pk = row[0]
        obj._state.adding = False
        obj._state.db = self.db
        if postgres:
            changed = {
                f.attname: getattr(obj, f.attname)
                for f, current in zip(out[1:], row[1:], strict=True)
                if f.to_python(current) != getattr(obj, f.attname)
            }
            if changed:
                self.filter(pk=obj.pk).update(**changed)
        return obj


# Annotations only (never evaluated at run time): a bare Django can't subscript Field.
_ENSURE_SQL: dict[
    tuple[Any, ...], tuple[str, list[models.Field[Any, Any]], list[models.Field[Any, Any]]]
] = {}


def _ensure_sql(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    key: tuple[str, ...],
    values: tuple[str, ...],
    update: tuple[str, ...],
) -> tuple[str, list[models.Field[Any, Any]], list[models.Field[Any, Any]]]:
    """The statement of ``ensure``, its parameters' fields and its returned fields; built once."""
    cache_key = (connection.vendor, model, key, values, update)
    if cache_key in _ENSURE_SQL:
        return _ENSURE_SQL[cache_key]
    if not update:
        raise ValueError("ensure() needs at least one field to update")
    fields = [_concrete(model, name) for name in (*key, *values)]
    key_fields = fields[: len(key)]
    out = [_concrete(model, "pk"), *(_concrete(model, name) for name in update)]
    table = connection.ops.quote_name(model._meta.db_table)
    returning = _columns(connection, out)
    insert = (
        f"INSERT INTO {table} ({_columns(connection, fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({_columns(connection, key_fields)}) "
    )
    if connection.vendor == "postgresql":
        where = " AND ".join(f"{_columns(connection, [f])} = %s" for f in key_fields)
        sql = (
            f"WITH new AS ({insert}DO NOTHING RETURNING {returning}) "
            f"SELECT {returning} FROM new UNION ALL "
            f"SELECT {returning} FROM {table} WHERE {where} LIMIT 1"
        )
    else:
        assignments = ", ".join(
            f"{_columns(connection, [f])} = excluded.{_columns(connection, [f])}" for f in out[1:]
        )
        sql = f"{insert}DO UPDATE SET {assignments} RETURNING {returning}"
    _ENSURE_SQL[cache_key] = sql, fields, out
    return _ENSURE_SQL[cache_key]


class WebhookEventManager(models.Manager["WebhookEvent"]):
    # Manager methods, not QuerySet ones: every delivery calls them, and a
    # QuerySet built for nothing costs as much as the rest of the call.
    def insert_if_new(
        self, *, payload_json: str | None = None, **values: Any
    ) -> WebhookEvent | None:
        """Insert an event unless its ``event_id`` is stored already.

        One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement: the unique
        constraint decides, so concurrent deliveries of one event store it once,
        without a check-then-insert race. Returns the new event, or ``None`` for
        a duplicate. Works on PostgreSQL and SQLite 3.35+.

        ``payload_json``, if given, is ``payload`` as JSON text (the body as
        received): it is stored as it is, instead of encoding ``payload`` again.
        """
        db = self._db or router.db_for_write(self.model)
        connection = connections[db]
        event = self.model(**values)
        sql, fields, payload_at = _insert_if_new_sql(connection)
        params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
        if payload_json is not None:
            params[payload_at] = payload_json
        with _bound_cursor(connection) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        event.pk = row[0]
        event._state.adding = False
        event._state.db = db
        return event


def _bound_cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor that sends the parameters apart from the SQL, where the driver can.

    Django's PostgreSQL backend binds parameters on the client by default:
    psycopg quotes each one into the SQL text, which the server then has to
    parse. The event's insert carries the whole payload, so sending it as a
    parameter costs less on both sides. Every parameter of that statement has
    a type PostgreSQL can infer, so server-side binding is safe for it
    whatever the ``server_side_binding`` option; if the host allows prepared
    statements (``prepare_threshold``), psycopg prepares it too. Other drivers,
    and connections wrapped by a third-party pool, get the usual cursor.
    """
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql import base

        backend: Any = base  # its stubs know neither is_psycopg3 nor the cursor classes
        connection.ensure_connection()
        if backend.is_psycopg3 and isinstance(connection.connection, backend.Database.Connection):
            connection.validate_thread_sharing()
            with connection.wrap_database_errors:
                cursor: Any = backend.ServerBindingCursor(connection.connection)
            if connection.queries_logged:
                return connection.make_debug_cursor(cursor)
            return connection.make_cursor(cursor)
    return connection.cursor()


# Annotations only (never evaluated at run time): a bare Django can't subscript Field.
_INSERT_SQL: dict[str, tuple[str, list[models.Field[Any, Any]], int]] = {}


def _insert_if_new_sql(
    connection: BaseDatabaseWrapper,
) -> tuple[str, list[models.Field[Any, Any]], int]:
    """The statement of ``insert_if_new``, the fields of its parameters and the payload's place.

    Built once per database vendor.
    """
    if connection.vendor not in _INSERT_SQL:
        meta = WebhookEvent._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        sql = (
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "
            f"({_columns(connection, fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({_columns(connection, [_concrete(WebhookEvent, 'event_id')])}) "
            f"DO NOTHING RETURNING {_columns(connection, [_concrete(WebhookEvent, 'pk')])}"
        )
        payload_at = fields.index(_concrete(WebhookEvent, "payload"))
        _INSERT_SQL[connection.vendor] = sql, fields, payload_at
    return _INSERT_SQL[connection.vendor]


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
