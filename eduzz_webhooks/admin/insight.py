"""The downloads insight page: downloads and learners per day; top courses, lessons, learners."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import django
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import Course, FileDownload, Learner, Lesson
from . import chart
from .base import ReadOnlyAdmin, can_view
from .forms import PeriodForm, whole_days

TOP_ROWS = 10


@dataclass(frozen=True)
class TopRow:
    """A row of a top table: the label links to ``url`` (if any), the count to its downloads."""

    label: str
    context: str
    downloads: int
    url: str
    downloads_url: str


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
        "breadcrumbs_list": django.VERSION >= (6, 0),
    }
    if form.is_valid():
        period = form.cleaned_data
        downloads = model_admin.get_queryset(request).order_by()
        if period["course"] is not None:
            downloads = downloads.filter(course=period["course"])
        if not period["chosen"]:
            period = latest_with_data(downloads, period)
        context.update(summary(model_admin, request, downloads, period))
        # Show the period actually used, defaults included.
        context["form"] = PeriodForm(
            initial={"start": period["start"], "end": period["end"], "course": period["course"]}
        )
    return TemplateResponse(request, "admin/eduzz_webhooks/filedownload/insight.html", context)


def latest_with_data(downloads: QuerySet[FileDownload], period: dict[str, Any]) -> dict[str, Any]:
    """``period``, or when it has no downloads, as long a period up to the latest download.

    The default period ends today: a site whose downloads all lie further back
    (a first import, a quiet course) would open on an empty page. One query,
    an index lookup.
    """
    latest = (
        downloads.filter(downloaded_at__lt=period["until"])
        .order_by("-downloaded_at")
        .values_list("downloaded_at", flat=True)
        .first()
    )
    if latest is None or latest >= period["since"]:
        return period
    end = timezone.localdate(latest)
    try:
        earlier = whole_days(end - (period["end"] - period["start"]), end)
    except ValidationError:
        return period
    return {**period, **earlier, "moved": True}


def summary(
    model_admin: ReadOnlyAdmin,
    request: HttpRequest,
    downloads: QuerySet[FileDownload],
    period: dict[str, Any],
) -> dict[str, Any]:
    """The page's figures for a cleaned ``period`` of ``downloads``.

    Seven queries: per day (downloads and distinct learners), then the top
    courses, lessons and learners, two queries each; five when a ``course`` is
    chosen, as its top courses would be itself.
    """
    start, end, since, until = period["start"], period["end"], period["since"], period["until"]
    course: Course | None = period["course"]
    in_range = downloads.filter(downloaded_at__gte=since, downloaded_at__lt=until)
    per_day = {
        row["day"]: (row["downloads"], row["learners"])
        for row in in_range.annotate(day=TruncDate("downloaded_at", tzinfo=since.tzinfo))
        .values("day")
        .annotate(downloads=Count("*"), learners=Count("learner", distinct=True))
    }
    # Every link keeps the course, so each count opens exactly the downloads it counts.
    scope = {"course__id__exact": course.pk} if course is not None else {}

    def listed(first: dt.datetime = since, last: dt.datetime = until, **query: Any) -> str:
        """The download list from ``first`` to ``last`` (by its date filter's own parameters).

        Written in UTC: a zone's offset in early years (a local mean time) may
        pass the 14 hours the list takes in a date filter (``payloads.MAX_OFFSET``).
        """
        dates = {
            "downloaded_at__gte": first.astimezone(dt.UTC).isoformat(),
            "downloaded_at__lt": last.astimezone(dt.UTC).isoformat(),
        }
        return model_admin.url("changelist", query={**scope, **dates, **query})

    figures = []
    for index in range((end - start).days + 1):
        first = since + dt.timedelta(days=index)
        day = start + dt.timedelta(days=index)
        figures.append(
            (day, *per_day.get(day, (0, 0)), listed(first, first + dt.timedelta(days=1)))
        )
    drawn = chart.draw(figures)
    peak = max((n for n, _learners in per_day.values()), default=0)

    def most_downloaded(field: str, rows: QuerySet[Any]) -> list[tuple[Any, int, str]]:
        """The ``TOP_ROWS`` most downloaded ``rows``, each with its count and its downloads' URL.

        Two queries: the counts, grouped on the foreign key ``field`` alone,
        then only those few ``rows``.
        """
        counts = list(
            in_range.values_list(field).annotate(n=Count("*")).order_by("-n", field)[:TOP_ROWS]
        )
        found = rows.in_bulk([pk for pk, _n in counts])
        return [
            (found[pk], n, listed(**{f"{field}__id__exact": pk})) for pk, n in counts if pk in found
        ]

    top_courses = []
    if course is None:
        courses = most_downloaded("course", Course.objects.select_related("producer"))
        top_courses = [
            TopRow(
                label=str(row),
                context=str(row.producer or ""),
                downloads=n,
                url=url,
                downloads_url=url,
            )
            for row, n, url in courses
        ]
    lessons = most_downloaded("lesson", Lesson.objects.select_related("course"))
    learners = most_downloaded("learner", Learner.objects.all())
    # A learner's page is their whole download history; only linked for those who may open it.
    pages = can_view(model_admin.admin_site, request, Learner)
    return {
        "start": start,
        "end": end,
        "course": course,
        "moved": period.get("moved", False),
        "days": drawn.days,
        "chart": drawn,
        "zone": timezone.get_current_timezone_name(),
        "total": sum(n for n, _learners in per_day.values()),
        "peak": peak,
        "peak_day": min((day for day, (n, _l) in per_day.items() if n == peak), default=None),
        "top_courses": top_courses,
        "top_lessons": [
            TopRow(label=str(row), context=str(row.course), downloads=n, url=url, downloads_url=url)
            for row, n, url in lessons
        ],
        "top_learners": [
            TopRow(
                label=row.name or row.email,
                context=row.email if row.name else "",
                downloads=n,
                url=model_admin.url("change", row.pk, model=Learner) if pages else "",
                downloads_url=url,
            )
            for row, n, url in learners
        ],
        "period_url": listed(),
    }
