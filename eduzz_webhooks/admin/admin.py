"""The app's screens, one ModelAdmin a model: what Eduzz sent is never edited by hand."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from ..models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent
from ..payloads import canonical_email
from . import export, insight
from .actions import erase_personal_data, replay
from .base import (
    DownloadCountAdmin,
    IndexedValuesFilter,
    ReadOnlyAdmin,
    SearchLookups,
    datetime_column,
)


def learner_lookups(word: str) -> list[tuple[str, str]]:
    """A search word in a learner's e-mail (compared as it is stored, any letter case) or name."""
    return [("email__contains", canonical_email(word)), ("name__icontains", word)]


@admin.register(FileDownload)
class FileDownloadAdmin(ReadOnlyAdmin):
    list_display = ["downloaded", "learner", "course", "lesson", "producer"]
    # The columns an index orders: by course, lesson or producer, each page would sort
    # every download (the filter by course and the search find theirs).
    sortable_by = ["downloaded", "learner"]
    # By date, Django's date filter (today, the past 7 days...): ranges the date index finds.
    list_filter = ["downloaded_at", "course"]
    search_fields = ["learner__email", "learner__name", "course__title", "lesson__title"]
    list_select_related = ["learner", "course", "lesson", "producer"]
    raw_id_fields = ["event", "learner", "course", "lesson", "producer"]
    ordering = ["-downloaded_at"]

    downloaded = datetime_column(FileDownload, "downloaded_at")

    def search_lookups(self, word: str) -> SearchLookups:
        """A word is in the learner's e-mail or name, the course's or the lesson's title."""
        return {
            "learner": (Learner, learner_lookups(word)),
            "course": (Course, [("title__icontains", word)]),
            "lesson": (Lesson, [("title__icontains", word)]),
        }

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        # Before the default URLs, whose "<path:object_id>/" would match these.
        return [
            path(f"{name}/", self.admin_site.admin_view(partial(view, self)), name=f"{info}_{name}")
            for name, view in [("insight", insight.view), ("export", export.view)]
        ] + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "insight_url": self.url("insight"),
            "export_url": export.url(self, request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)


@admin.register(Course)
class CourseAdmin(DownloadCountAdmin):
    list_display = ["title", "hash", "producer", "download_count"]
    search_fields = ["title", "hash"]
    list_select_related = ["producer"]
    raw_id_fields = ["producer"]
    downloads_panel = "lesson_downloads"
    lesson_rows = 200  # the page stays light for a huge course; the lesson list has the rest

    @admin.display(description=_("lessons"))
    def lesson_downloads(self, obj: Course) -> str:
        lessons = list(
            obj.lessons.annotate(download_count=Count("downloads")).order_by(
                "-download_count", "title", "pk"
            )[: self.lesson_rows + 1]
        )
        return render_to_string(
            "admin/eduzz_webhooks/course/lesson_downloads.html",
            {
                "lessons": [
                    (
                        lesson,
                        self.url(
                            "changelist", model=FileDownload, query={"lesson__id__exact": lesson.pk}
                        ),
                    )
                    for lesson in lessons[: self.lesson_rows]
                ],
                "all_url": self.url("changelist", model=Lesson, query={"course__id__exact": obj.pk})
                if len(lessons) > self.lesson_rows
                else "",
            },
        )


@admin.register(Lesson)
class LessonAdmin(DownloadCountAdmin):
    list_display = ["title", "external_id", "course", "download_count"]
    search_fields = ["title", "external_id", "course__title"]
    list_select_related = ["course"]
    raw_id_fields = ["course"]


@admin.register(Learner)
class LearnerAdmin(DownloadCountAdmin):
    list_display = ["email", "name", "download_count"]
    # Not by downloads, which would count the downloads of every learner for each page:
    # the insight page's top learners rank them, over a period.
    sortable_by = ["email", "name"]
    search_fields = ["email", "name"]
    actions = [erase_personal_data]
    downloads_panel = "download_history"
    history_rows = 50

    def search_lookups(self, word: str) -> SearchLookups:
        return {"": (Learner, learner_lookups(word))}

    @admin.display(description=_("downloads"))
    def download_history(self, obj: Learner) -> str:
        downloads = obj.downloads.select_related("course", "lesson").order_by(
            "-downloaded_at", "-pk"
        )[: self.history_rows]
        return render_to_string(
            "admin/eduzz_webhooks/learner/download_history.html",
            {
                "downloads": [
                    (download, self.url("change", download.pk, model=FileDownload))
                    for download in downloads
                ],
                "total": getattr(obj, "download_count", None),
                "all_url": self.url(
                    "changelist", model=FileDownload, query={"learner__id__exact": obj.pk}
                ),
            },
        )

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.erase_{self.opts.model_name}")


@admin.register(Producer)
class ProducerAdmin(DownloadCountAdmin):
    list_display = ["email", "name", "eduzz_id", "download_count"]
    search_fields = ["email", "name", "eduzz_id"]


STATUS_ICONS: dict[str, str] = {
    WebhookEvent.Status.RECEIVED: "admin/img/icon-unknown.svg",  # outcome not known yet
    WebhookEvent.Status.PROCESSED: "admin/img/icon-yes.svg",
    WebhookEvent.Status.FAILED: "admin/img/icon-no.svg",
}


class EventTypeFilter(IndexedValuesFilter):
    """The events' types, each looked up in the type index."""

    title = WebhookEvent._meta.get_field("event_type").verbose_name
    parameter_name = "event_type"


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type_name", "status_badge", "attempt_count", "received", "sent"]
    # The columns an index orders; the filters find events by type and status.
    sortable_by = ["event_id", "received"]
    list_filter = ["status", EventTypeFilter, "received_at"]
    search_fields = ["event_id__exact"]  # an id is exact and case-sensitive: its index finds it
    actions = [replay]
    fields = [
        "event_id",
        "event_type",
        "status",
        "attempts",
        "sent_at",
        "received_at",
        "processed_at",
        "error_display",
        "payload_display",
    ]

    @admin.display(
        description=WebhookEvent._meta.get_field("event_type").verbose_name,
        ordering="event_type",
    )
    def type_name(self, obj: WebhookEvent) -> str:
        # "nutror.file_downloaded" may break after its dot, in a narrow column.
        parts = obj.event_type.split(".")
        return format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in parts))

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WebhookEvent) -> str:
        # The icon is decoration (empty alt): the status text beside it is what is read out.
        # One line: the icon never parts from its word.
        icon = STATUS_ICONS.get(obj.status, "admin/img/icon-alert.svg")
        return format_html(
            '<span class="eduzz-status">'
            '<img src="{}" alt="" width="13" height="13">&nbsp;{}</span>',
            static(icon),
            obj.get_status_display(),
        )

    @admin.display(description=_("attempts"), ordering="attempts")
    def attempt_count(self, obj: WebhookEvent) -> int:
        return obj.attempts  # under a title shorter than the field's "processing attempts"

    received = datetime_column(WebhookEvent, "received_at")
    sent = datetime_column(WebhookEvent, "sent_at")

    @admin.display(description=_("payload"))
    def payload_display(self, obj: WebhookEvent) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)

    @admin.display(description=_("error"))
    def error_display(self, obj: WebhookEvent) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.error or "-")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.replay_{self.opts.model_name}")
