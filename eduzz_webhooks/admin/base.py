"""What every screen of the app shares: read-only lists, download counts, who sees downloads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Count, DateField, DateTimeField, Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.formats import date_format, time_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import FileDownload
from ..payloads import KEPT_YEARS, MAX_OFFSET

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


def short_datetime(value: dt.datetime | None) -> str | None:
    """``value`` as a list shows it: compact, in the current time zone (``None`` stays empty).

    The short date and the time, each kept on one line: in a narrow column the
    time goes under the date, never half of it (the admin keeps a datetime on
    one line, too wide for a laptop's list).
    """
    if value is None:
        return None
    local = timezone.localtime(value)
    return format_html(
        '<span class="nowrap">{}</span> <span class="nowrap">{}</span>',
        date_format(local, "SHORT_DATE_FORMAT"),
        time_format(local, "TIME_FORMAT"),
    )


# The days of the dates the app keeps, in any time zone; the end bounds the last one.
KEPT_START = dt.datetime(KEPT_YEARS[0], 1, 1)
KEPT_END = dt.datetime(KEPT_YEARS[-1] + 1, 1, 1)
# Lookups of a date field whose value is a date-time (a date for a DateField).
INSTANT_LOOKUPS = {"exact", "gt", "gte", "lt", "lte", "in", "range"}


def beyond_kept_dates(model: type[Model], key: str, value: str) -> bool:
    """Whether a list's filter ``key=value`` names a day beyond those of the dates the app keeps.

    Those days are the years ``payloads.KEPT_YEARS`` in the current time zone
    (an instant may be the end of the last one); an offset over
    ``payloads.MAX_OFFSET`` is beyond too. ``key`` is a lookup on
    a date field of ``model`` itself (the only ones a list takes without a list
    filter for them); a value such a lookup can't read is not beyond, as the
    admin already takes it for an invalid filter.
    """
    name, *lookups = key.split(LOOKUP_SEP)
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    if not isinstance(field, DateField):
        return False
    kind = lookups[0] if lookups else "exact"
    texts = value.split(",") if lookups[-1:] in (["in"], ["range"]) else [value]
    beyond: Callable[[str], bool]
    if kind in ("year", "iso_year"):
        beyond = _beyond_year
    elif kind in INSTANT_LOOKUPS and isinstance(field, DateTimeField):
        beyond = partial(_beyond_instant, field)
    elif kind in INSTANT_LOOKUPS or kind == "date":
        beyond = _beyond_date
    else:
        return False  # the month, the hour...: numbers a date has, whatever its year
    return any(beyond(text) for text in texts)


def _beyond_year(text: str) -> bool:
    try:
        return int(text) not in KEPT_YEARS
    except ValueError:
        return False


def _beyond_date(text: str) -> bool:
    try:
        date = parse_date(text.strip())
    except ValueError:
        return False
    return date is not None and date.year not in KEPT_YEARS


def _beyond_instant(field: DateTimeField[Any, Any], text: str) -> bool:
    try:
        value = field.to_python(text)
    except ValidationError:
        return False
    if value is None:
        return False
    if timezone.is_naive(value):  # as the filter will take it
        value = value.replace(tzinfo=timezone.get_default_timezone())
    offset = value.utcoffset()
    if offset is None or abs(offset) > MAX_OFFSET:
        return True
    try:
        local = timezone.localtime(value).replace(tzinfo=None)  # as the list shows it
    except OverflowError:
        return True
    return not KEPT_START <= local <= KEPT_END


class SafeDatesChangeList(ChangeList):
    """A list whose date filters, date hierarchy included, stay on the days of the dates kept.

    A date beyond them (``?downloaded_at__gte=0001-01-01``,
    ``?downloaded_at__year=9999``) is an invalid filter, which the admin
    answers as any other (a redirect to the list with ``?e=1``): no row could
    match it, and the admin's date arithmetic or the database would fail on it.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        for key, values in self.get_filters_params().items():
            for value in values:
                if beyond_kept_dates(self.model, key, value):
                    raise IncorrectLookupParameters(f"{key}={value}: beyond the dates kept")
        try:
            return super().get_filters(request)
        except OverflowError as exc:  # a date hierarchy month or day of many digits
            raise IncorrectLookupParameters(exc) from exc


class ReadOnlyAdmin(ModelAdmin):
    """Viewing needs the model's view permission; nothing can be added, changed or deleted."""

    show_full_result_count = False  # no COUNT(*) of the whole table on every page

    class Media:
        # The lists fit a laptop screen: long column titles and values wrap.
        css = {"all": ["eduzz_webhooks/changelist.css"]}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SafeDatesChangeList

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

    # The read-only field of an object's page that lists its downloads: shown only
    # to users who may see downloads, as its links would refuse anyone else.
    downloads_panel = ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        annotated: QuerySet[Any] = queryset.annotate(download_count=Count("downloads"))
        return annotated

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [*super().get_readonly_fields(request, obj)]
        if (
            self.downloads_panel
            and obj is not None
            and can_view(self.admin_site, request, FileDownload)
        ):
            fields.append(self.downloads_panel)
        return fields

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
