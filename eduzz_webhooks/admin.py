"""Read-only admin: what Eduzz sent is never edited by hand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import processing
from .models import Course, FileDownload, Learner, Lesson, Producer, WebhookEvent


if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


class ReadOnlyAdmin(ModelAdmin):
    """Viewing needs the model's view permission; nothing can be added, changed or deleted."""

    show_full_result_count = False  # no COUNT(*) of the whole table on every page

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DownloadCountAdmin(ReadOnlyAdmin):
    """Lists annotated with their number of downloads, sortable by it."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(download_count=Count("downloads"))

    @admin.display(description=_("downloads"), ordering="download_count")
    def download_count(self, obj: Any) -> int:
        return int(obj.download_count)


@admin.register(FileDownload)
class FileDownloadAdmin(ReadOnlyAdmin):
    list_display = ["downloaded_at", "learner", "course", "lesson", "producer"]
    list_filter = ["downloaded_at", "course"]
    date_hierarchy = "downloaded_at"
    search_fields = ["learner__email", "learner__name", "course__title", "lesson__title"]
    list_select_related = ["learner", "course", "lesson", "producer"]
    raw_id_fields = ["event", "learner", "course", "lesson", "producer"]
    ordering = ["-downloaded_at"]


@admin.register(Course)
class CourseAdmin(DownloadCountAdmin):
    list_display = ["title", "hash", "producer", "download_count"]
    search_fields = ["title", "hash"]
    list_select_related = ["producer"]
    raw_id_fields = ["producer"]


@admin.register(Lesson)
class LessonAdmin(DownloadCountAdmin):
    list_display = ["title", "external_id", "course", "download_count"]
    search_fields = ["title", "external_id", "course__title"]
    list_select_related = ["course"]
    raw_id_fields = ["course"]


@admin.register(Learner)
class LearnerAdmin(DownloadCountAdmin):
    list_display = ["email", "name", "download_count"]
    search_fields = ["email", "name"]


@admin.register(Producer)
class ProducerAdmin(DownloadCountAdmin):
    list_display = ["email", "name", "eduzz_id", "download_count"]
    search_fields = ["email", "name", "eduzz_id"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "event_type", "status", "attempts", "received_at", "sent_at"]
    list_filter = ["status", "event_type", "received_at"]
    search_fields = ["=event_id", "event_type"]
    date_hierarchy = "received_at"
    actions = ["replay"]
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

    @admin.display(description=_("payload"))
    def payload_display(self, obj: WebhookEvent) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)

    @admin.display(description=_("error"))
    def error_display(self, obj: WebhookEvent) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.error or "-")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.replay_{opts.model_name}")

    @admin.action(description=_("Replay the selected events"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        outcomes: dict[processing.Outcome, int] = {}
        for event in queryset.iterator():
            outcome = processing.process(event).outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        processed = outcomes.get(processing.Outcome.PROCESSED, 0)
        failed = outcomes.get(processing.Outcome.FAILED, 0)
        if processed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event replayed and processed.",
                    "%(count)d events replayed and processed.",
                    processed,
                )
                % {"count": processed},
                messages.SUCCESS,
            )
        if failed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event failed again; see its error.",
                    "%(count)d events failed again; see their errors.",
                    failed,
                )
                % {"count": failed},
                messages.ERROR,
            )
