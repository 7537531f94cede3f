"""Read-only admin: what Eduzz sent is never edited by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ALL_VAR, PAGE_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Model, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from . import privacy, processing
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

    def url(
        self,
        name: str,
        *args: Any,
        model: type[Model] | None = None,
        query: dict[str, Any] | None = None,
    ) -> str:
        """The URL of this site's admin view ``name`` of this model (or ``model``)."""
        opts = (model or self.model)._meta
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{name}",
            args=args,
            current_app=self.admin_site.name,
        )
        return f"{url}?{urlencode(query)}" if query else url


class DownloadCountAdmin(ReadOnlyAdmin):
    """Lists annotated with their number of downloads, sortable by it."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        annotated: QuerySet[Any] = queryset.annotate(download_count=Count("downloads"))
        return annotated

    @admin.display(description=_("downloads"), ordering="download_count")
    def download_count(self, obj: Any) -> int:
        return int(obj.download_count)


def can_view(admin_site: admin.AdminSite, request: HttpRequest, model: type[Model]) -> bool:
    """Whether the user may see ``model`` in this admin site (links to it would work)."""
    try:
        model_admin = admin_site.get_model_admin(model)
    except NotRegistered:
        return False
    return model_admin.has_view_permission(request)


# -- downloads insight and export --------------------------------------------------------

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366  # one bar per day: beyond a year the bars get too thin to read
TOP_ROWS = 10
EXPORT_CHUNK_ROWS = 2000
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class DatePicker(forms.DateInput):
    input_type = "date"  # the browser's own date picker; it submits ISO dates

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class PeriodForm(forms.Form):
    """Whole days in the current time zone, both ends included; default: the last 30 days."""

    start = forms.DateField(label=_("From"), required=False, widget=DatePicker())
    end = forms.DateField(label=_("To"), required=False, widget=DatePicker())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        end: dt.date = cleaned.get("end") or timezone.localdate()
        start: dt.date = cleaned.get("start") or end - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if start > end:
            raise ValidationError(
                _("The start date must not be after the end date."), code="reversed"
            )
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise ValidationError(
                _("Choose a period of at most %(days)d days."),
                code="too_long",
                params={"days": MAX_PERIOD_DAYS},
            )
        tz = timezone.get_current_timezone()
        try:
            since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
            until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            # The database compares in UTC: refuse here what cannot be expressed there.
            since.astimezone(dt.timezone.utc)
            until.astimezone(dt.timezone.utc)
        except OverflowError:
            raise ValidationError(_("These dates are out of range."), code="range") from None
        return {"start": start, "end": end, "since": since, "until": until}


@dataclass(frozen=True)
class Bar:
    """One day of the chart. Coordinates are strings: a template would localize "0,1"."""

    day: dt.date
    downloads: int
    url: str
    x: str
    y: str
    height: str


@dataclass(frozen=True)
class TopRow:
    label: str
    context: str
    downloads: int
    url: str


def most_downloaded(
    downloads: QuerySet[FileDownload], field: str, rows: QuerySet[Any]
) -> list[tuple[Any, int]]:
    """The ``TOP_ROWS`` most downloaded ``field`` rows (course, lesson) and their counts.

    Grouped on the foreign key alone, which is what stays cheap on a million
    downloads; then only those few ``rows`` are fetched. Two queries.
    """
    counts = list(
        downloads.values_list(field)
        .annotate(downloads=Count("pk"))
        .order_by("-downloads", field)[:TOP_ROWS]
    )
    found = rows.in_bulk([pk for pk, _n in counts])
    return [(found[pk], n) for pk, n in counts if pk in found]


def period_params(since: dt.datetime, until: dt.datetime) -> dict[str, str]:
    """The download list's querystring for a period (its date filter's own parameters)."""
    return {"downloaded_at__gte": since.isoformat(), "downloaded_at__lt": until.isoformat()}


def csv_safe(value: Any) -> str:
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def csv_chunks(header: list[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """CSV text in chunks of ``EXPORT_CHUNK_ROWS`` rows: constant memory, few writes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for number, row in enumerate(rows, start=1):
        writer.writerow(csv_safe(value) for value in row)
        if number % EXPORT_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@admin.register(FileDownload)
class FileDownloadAdmin(ReadOnlyAdmin):
    list_display = ["downloaded_at", "learner", "course", "lesson", "producer"]
    list_filter = ["downloaded_at", "course"]
    date_hierarchy = "downloaded_at"
    search_fields = ["learner__email", "learner__name", "course__title", "lesson__title"]
    list_select_related = ["learner", "course", "lesson", "producer"]
    raw_id_fields = ["event", "learner", "course", "lesson", "producer"]
    ordering = ["-downloaded_at"]
    # Columns of the CSV export: (lookup, header). values_list() joins the related
    # rows in the one query and leaves out what is not exported (the event's payload).
    export_columns = [
        ("downloaded_at", _("downloaded at")),
        ("learner__email", _("learner e-mail")),
        ("learner__name", _("learner name")),
        ("course__hash", _("course hash")),
        ("course__title", _("course title")),
        ("lesson__external_id", _("lesson id")),
        ("lesson__title", _("lesson title")),
        ("producer__email", _("producer e-mail")),
        ("event__event_id", _("event id")),
    ]

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            # Before the default URLs, whose "<path:object_id>/" would match these.
            path(
                "insight/",
                self.admin_site.admin_view(self.insight_view),
                name=f"{info}_insight",
            ),
            path("export/", self.admin_site.admin_view(self.export_view), name=f"{info}_export"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The export gets the list's filters, search and ordering, but all of its pages.
        query = request.GET.copy()
        for param in (PAGE_VAR, ALL_VAR):
            query.pop(param, None)
        export_url = self.url("export")
        context = {
            "insight_url": self.url("insight"),
            "export_url": f"{export_url}?{query.urlencode()}" if query else export_url,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def insight_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PeriodForm(request.GET)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Downloads insight"),
            "form": form,
        }
        if form.is_valid():
            period = form.cleaned_data
            context.update(self.insight(request, **period))
            # Show the period actually used, defaults included.
            context["form"] = PeriodForm(initial={"start": period["start"], "end": period["end"]})
        return TemplateResponse(request, "admin/eduzz_webhooks/filedownload/insight.html", context)

    def insight(
        self,
        request: HttpRequest,
        start: dt.date,
        end: dt.date,
        since: dt.datetime,
        until: dt.datetime,
    ) -> dict[str, Any]:
        """Downloads per day and the top courses and lessons: five queries, three aggregates."""
        period = (
            self.get_queryset(request)
            .filter(downloaded_at__gte=since, downloaded_at__lt=until)
            .order_by()
        )
        per_day = {
            row["day"]: row["downloads"]
            for row in period.annotate(day=TruncDate("downloaded_at", tzinfo=since.tzinfo))
            .values("day")
            .annotate(downloads=Count("pk"))
        }
        days = (end - start).days + 1
        peak = max(per_day.values(), default=0)
        bars = []
        for index in range(days):
            day = start + dt.timedelta(days=index)
            downloads = per_day.get(day, 0)
            day_params = period_params(
                since + dt.timedelta(days=index), since + dt.timedelta(days=index + 1)
            )
            bars.append(
                Bar(
                    day=day,
                    downloads=downloads,
                    url=self.url("changelist", query=day_params),
                    x=f"{index + 0.1:.1f}",
                    y=str(peak - downloads),
                    height=str(downloads),
                )
            )
        in_period = period_params(since, until)
        top_courses = [
            TopRow(
                label=str(course),
                context=course.hash,
                downloads=downloads,
                url=self.url("changelist", query={"course__id__exact": course.pk, **in_period}),
            )
            for course, downloads in most_downloaded(period, "course", Course.objects.all())
        ]
        top_lessons = [
            TopRow(
                label=str(lesson),
                context=str(lesson.course),
                downloads=downloads,
                url=self.url("changelist", query={"lesson__id__exact": lesson.pk, **in_period}),
            )
            for lesson, downloads in most_downloaded(
                period, "lesson", Lesson.objects.select_related("course")
            )
        ]
        return {
            "start": start,
            "end": end,
            "bars": bars,
            "view_box": f"0 0 {days} {peak}",
            "total": sum(per_day.values()),
            "peak": peak,
            "peak_day": min((day for day, n in per_day.items() if n == peak), default=None),
            "top_courses": top_courses,
            "top_lessons": top_lessons,
            "period_url": self.url("changelist", query=in_period),
        }

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The download list as CSV, with the list's filters, search and ordering."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(
                request,
                gettext("These filters are not valid: nothing was exported."),
                messages.ERROR,
            )
            return HttpResponseRedirect(self.url("changelist"))
        lookups = [lookup for lookup, _header in self.export_columns]
        rows = changelist.queryset.values_list(*lookups).iterator(chunk_size=EXPORT_CHUNK_ROWS)
        # Taken now: the rows are written after this view returns, when a middleware may
        # have deactivated the request's time zone.
        tz = timezone.get_current_timezone()
        filename = f"file-downloads-{timezone.localdate(timezone=tz):%Y-%m-%d}.csv"
        return StreamingHttpResponse(
            csv_chunks(
                [str(header) for _lookup, header in self.export_columns],
                ((row[0].astimezone(tz).isoformat(), *row[1:]) for row in rows),
            ),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": content_disposition_header(True, filename)},
        )


@admin.register(Course)
class CourseAdmin(DownloadCountAdmin):
    list_display = ["title", "hash", "producer", "download_count"]
    search_fields = ["title", "hash"]
    list_select_related = ["producer"]
    raw_id_fields = ["producer"]
    lesson_rows = 200  # the page stays light for a huge course; the lesson list has the rest

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [*super().get_readonly_fields(request, obj)]
        if obj is not None and can_view(self.admin_site, request, FileDownload):
            fields.append("lesson_downloads")
        return fields

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
    search_fields = ["email", "name"]
    actions = ["erase_personal_data"]
    history_rows = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [*super().get_readonly_fields(request, obj)]
        if obj is not None and can_view(self.admin_site, request, FileDownload):
            fields.append("download_history")
        return fields

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
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.erase_{opts.model_name}")

    @admin.action(description=_("Erase personal data (LGPD)"), permissions=["erase"])
    def erase_personal_data(self, request: HttpRequest, queryset: QuerySet[Learner]) -> None:
        try:
            reports = privacy.erase_learners(queryset.values_list("email", flat=True))
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        erased = [report for report in reports if report.found]
        if erased:
            count = sum(report.learners for report in erased)
            self.message_user(
                request,
                ngettext(
                    "Erased the personal data of %(count)d learner: %(downloads)d download(s) "
                    "kept, %(payloads)d stored event(s) scrubbed.",
                    "Erased the personal data of %(count)d learners: %(downloads)d download(s) "
                    "kept, %(payloads)d stored event(s) scrubbed.",
                    count,
                )
                % {
                    "count": count,
                    "downloads": sum(report.downloads for report in erased),
                    "payloads": sum(report.payloads for report in erased),
                },
                messages.SUCCESS,
            )
        if skipped := len(reports) - len(erased):
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected learner had no personal data left (already erased).",
                    "%(count)d selected learners had no personal data left (already erased).",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )


@admin.register(Producer)
class ProducerAdmin(DownloadCountAdmin):
    list_display = ["email", "name", "eduzz_id", "download_count"]
    search_fields = ["email", "name", "eduzz_id"]


STATUS_ICONS: dict[str, str] = {
    WebhookEvent.Status.RECEIVED: "admin/img/icon-unknown.svg",  # outcome not known yet
    WebhookEvent.Status.PROCESSED: "admin/img/icon-yes.svg",
    WebhookEvent.Status.FAILED: "admin/img/icon-no.svg",
}

# What the replay action reports, per outcome (None: skipped).
REPLAY_MESSAGES = [
    (
        processing.Outcome.PROCESSED,
        ngettext_lazy(
            "%(count)d event replayed and processed.",
            "%(count)d events replayed and processed.",
            "count",
        ),
        messages.SUCCESS,
    ),
    (
        processing.Outcome.FAILED,
        ngettext_lazy(
            "%(count)d event failed again; see its error.",
            "%(count)d events failed again; see their errors.",
            "count",
        ),
        messages.ERROR,
    ),
    (
        processing.Outcome.PENDING,
        ngettext_lazy(
            "%(count)d event replayed; its receivers run when this request's transaction commits.",
            "%(count)d events replayed; their receivers run when this request's transaction "
            "commits.",
            "count",
        ),
        messages.INFO,
    ),
    (
        processing.Outcome.PRUNED,
        ngettext_lazy(
            "%(count)d event has a pruned payload: nothing to replay.",
            "%(count)d events have a pruned payload: nothing to replay.",
            "count",
        ),
        messages.INFO,
    ),
    (
        None,
        ngettext_lazy(
            "%(count)d event skipped: another replay or delivery took it meanwhile.",
            "%(count)d events skipped: another replay or delivery took them meanwhile.",
            "count",
        ),
        messages.WARNING,
    ),
]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "event_type", "status_badge", "attempts", "received_at", "sent_at"]
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

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WebhookEvent) -> str:
        # The icon is decoration (empty alt): the status text beside it is what is read out.
        icon = STATUS_ICONS.get(obj.status, "admin/img/icon-alert.svg")
        return format_html(
            '<img src="{}" alt="" width="13" height="13">&nbsp;{}',
            static(icon),
            obj.get_status_display(),
        )

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
        counts: dict[processing.Outcome | None, int] = {}
        for event_id, status in queryset.values_list("event_id", "status").iterator():
            # Claimed from the status just read: of two concurrent replays of one event
            # (another admin, a re-delivery from Eduzz), one runs it and the other skips it.
            event = processing.claim(event_id, status)
            outcome = processing.process(event).outcome if event else None
            counts[outcome] = counts.get(outcome, 0) + 1
        for outcome, message, level in REPLAY_MESSAGES:
            if counts.get(outcome):
                self.message_user(request, message % {"count": counts[outcome]}, level)
