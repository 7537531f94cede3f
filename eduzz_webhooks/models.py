"""What the app keeps: every authentic event, and the records built from them."""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def insert_if_new(self, **values: Any) -> WebhookEvent | None:
        """Insert an event unless its ``event_id`` is stored already.

        One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement: the unique
        constraint decides, so concurrent deliveries of one event store it once,
        without a check-then-insert race. Returns the new event, or ``None`` for
        a duplicate. Works on PostgreSQL and SQLite 3.35+.
        """
        event = self.model(**values)
        meta = self.model._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        connection = connections[self.db]
        qn = connection.ops.quote_name
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({qn(meta.get_field('event_id').column)}) DO NOTHING "
            f"RETURNING {qn(meta.pk.column)}"
        )
        params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        event.pk = row[0]
        event._state.adding = False
        event._state.db = self.db
        return event


class WebhookEvent(models.Model):
    """One authentic delivery from Eduzz, stored before any processing."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("received")
        PROCESSED = "processed", _("processed")
        FAILED = "failed", _("failed")

    event_id = models.CharField(_("event id"), max_length=255, unique=True)
    event_type = models.CharField(_("event type"), max_length=255, db_index=True)
    payload = models.JSONField(_("payload"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("processing attempts"), default=0)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]
        permissions = [("replay_webhookevent", _("Can replay webhook events"))]
        indexes = [models.Index(fields=["status", "received_at"], name="eduzz_event_status_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class Producer(models.Model):
    """The course owner on Eduzz, identified by e-mail."""

    email = models.CharField(_("e-mail"), max_length=254, unique=True)
    name = models.TextField(_("name"), blank=True)
    eduzz_id = models.CharField(_("Eduzz id"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("producer")
        verbose_name_plural = _("producers")
        ordering = ["email"]

    def __str__(self) -> str:
        return self.name or self.email


class Course(models.Model):
    """A Nutror course, identified by its hash."""

    hash = models.CharField(_("hash"), max_length=255, unique=True)
    title = models.TextField(_("title"), blank=True)
    producer = models.ForeignKey(
        Producer,
        verbose_name=_("producer"),
        related_name="courses",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )

    class Meta:
        verbose_name = _("course")
        verbose_name_plural = _("courses")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title or self.hash


class Lesson(models.Model):
    """A lesson of a course; its id is unique within the course."""

    course = models.ForeignKey(
        Course, verbose_name=_("course"), related_name="lessons", on_delete=models.PROTECT
    )
    external_id = models.CharField(_("Eduzz lesson id"), max_length=255)
    title = models.TextField(_("title"), blank=True)

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

    email = models.CharField(_("e-mail"), max_length=254, unique=True)
    name = models.TextField(_("name"), blank=True)

    class Meta:
        verbose_name = _("learner")
        verbose_name_plural = _("learners")
        ordering = ["email"]

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
        Learner, verbose_name=_("learner"), related_name="downloads", on_delete=models.PROTECT
    )
    course = models.ForeignKey(
        Course, verbose_name=_("course"), related_name="downloads", on_delete=models.PROTECT
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
