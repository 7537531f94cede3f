"""The downloads insight page: downloads per day as SVG bars, and the top courses and lessons."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from ..models import Course, FileDownload, Lesson
from .base import ReadOnlyAdmin
from .forms import PeriodForm

TOP_ROWS = 10


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

    Two queries: the counts, grouped on the foreign key alone, then only those
    few ``rows``.
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


def view(model_admin: ReadOnlyAdmin, request: HttpRequest) -> HttpResponse:
    """The insight page of ``model_admin``'s downloads, for the period the querystring asks."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = PeriodForm(request.GET)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": _("Downloads insight"),
        "form": form,
    }
    if form.is_valid():
        period = form.cleaned_data
        context.update(summary(model_admin, request, **period))
        # Show the period actually used, defaults included.
        context["form"] = PeriodForm(initial={"start": period["start"], "end": period["end"]})
    return TemplateResponse(request, "admin/eduzz_webhooks/filedownload/insight.html", context)


def summary(
    model_admin: ReadOnlyAdmin,
    request: HttpRequest,
    start: dt.date,
    end: dt.date,
    since: dt.datetime,
    until: dt.datetime,
) -> dict[str, Any]:
    """Downloads per day and the top courses and lessons: five queries, three aggregates."""
    period = (
        model_admin.get_queryset(request)
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
                url=model_admin.url("changelist", query=day_params),
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
            url=model_admin.url("changelist", query={"course__id__exact": course.pk, **in_period}),
        )
        for course, downloads in most_downloaded(period, "course", Course.objects.all())
    ]
    top_lessons = [
        TopRow(
            label=str(lesson),
            context=str(lesson.course),
            downloads=downloads,
            url=model_admin.url("changelist", query={"lesson__id__exact": lesson.pk, **in_period}),
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
        "period_url": model_admin.url("changelist", query=in_period),
    }
