"""What the app keeps: every authentic event, and the records built from them.

Uniqueness and indexes are declared in each ``Meta``, as constraints and plain
indexes: a CharField's ``unique=True`` or ``db_index=True`` would also make
PostgreSQL keep a second ``_like`` index, extra work on every insert for
lookups this app never makes. Foreign keys that lead a composite index or
constraint get no index of their own, for the same reason.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .managers import EntityManager


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


class Producer(models.Model):
    """The course owner on Eduzz, identified by e-mail."""

    email = models.CharField(_("e-mail"), max_length=254)
    name = models.TextField(_("name"), blank=True)
    eduzz_id = models.CharField(_("Eduzz id"), max_length=64, blank=True)

    objects = EntityManager["Producer"]()

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

    objects = EntityManager["Course"]()

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

    objects = EntityManager["Lesson"]()

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

    objects = EntityManager["Learner"]()

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
            # The list's order, and every column the insight page groups by: its
            # aggregates over a period read the index alone, never the table.
            models.Index(
                fields=["-downloaded_at", "course", "lesson", "learner"],
                name="eduzz_download_date_idx",
            ),
            models.Index(fields=["course", "-downloaded_at"], name="eduzz_download_course_idx"),
            models.Index(fields=["learner", "-downloaded_at"], name="eduzz_download_learner_idx"),
        ]

    def __str__(self) -> str:
        when = timezone.localtime(self.downloaded_at)  # as every date a person reads
        return f"{self.learner} · {self.lesson} · {when:%Y-%m-%d %H:%M}"
