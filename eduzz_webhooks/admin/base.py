"""What every screen of the app shares: read-only lists, download counts, who sees downloads.

Every list answers in a time that does not grow with its table: counted up to
a cap, its type filter found by index lookups, its download counts counted for
the rows shown.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from functools import partial, reduce
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import (
    Count,
    DateField,
    DateTimeField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.constants import LOOKUP_SEP
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.formats import date_format, time_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _

from ..models import FileDownload
from ..payloads import KEPT_YEARS, MAX_OFFSET

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    AnyPaginator = Paginator[Any]
else:
    ModelAdmin = admin.ModelAdmin
    AnyPaginator = Paginator

# Where a search word is looked for: {path: (model, [(lookup, value), ...])}, each path a
# forward foreign key from the list's model ("" for its own rows).
SearchLookups = dict[str, tuple[type[Model], list[tuple[str, Any]]]]


def search_words(search_term: str) -> list[str]:
    """The words of a search as Django's admin splits them (a quoted phrase is one word)."""
    words = []
    for word in smart_split(search_term):
        if word.startswith(('"', "'")) and word[0] == word[-1]:
            word = unescape_string_literal(word)
        words.append(word)
    return words


def every_word(per_word: list[list[tuple[str, Any]]]) -> Q:
    """Each word's list of ``(lookup, value)`` pairs has one that matches."""
    any_of = (reduce(operator.or_, (Q(**{k: v}) for k, v in word)) for word in per_word)
    return reduce(operator.and_, any_of)


def datetime_column(model: type[Model], name: str) -> Callable[[Any, Any], str | None]:
    """A list column of ``model``'s date-time field ``name``, sortable by it.

    The short date and the time in the current time zone, each unbroken: a
    narrow column wraps between them, never inside one. Empty stays empty.
    """
    field = cast("DateTimeField[Any, Any]", model._meta.get_field(name))

    @admin.display(description=field.verbose_name, ordering=name)
    def column(model_admin: Any, obj: Any) -> str | None:
        value = getattr(obj, name)
        if value is None:
            return None
        local = timezone.localtime(value)
        return format_html(
            '<span class="nowrap">{}</span> <span class="nowrap">{}</span>',
            date_format(local, "SHORT_DATE_FORMAT"),
            time_format(local, "TIME_FORMAT"),
        )

    return column


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


class CappedPaginator(AnyPaginator):
    """Counts at most ``cap`` rows: past that, ``count`` is ``cap`` and ``capped`` is true.

    Counting reads every row a list matches; this reads at most ``cap`` + 1, so
    a list of millions pages through its first ``cap`` rows and says there are
    more (the app's ``pagination.html``).
    """

    cap = 10_000

    @cached_property
    def counted(self) -> int:
        """The rows, up to ``cap`` + 1: one query, unordered, of the primary keys alone."""
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return rows.order_by().values("pk")[: self.cap + 1].count()
        return len(rows)

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.cap)

    @property
    def capped(self) -> bool:
        return self.counted > self.cap


class IndexedValuesFilter(admin.SimpleListFilter):
    """A filter by each value of the field ``parameter_name`` (never null), found through its index.

    Listing a field's values with ``SELECT DISTINCT`` reads every row; here each
    value is the first one greater than the last, which the field's index finds
    at once: one query per value, for the first ``max_values`` values.
    """

    parameter_name: str
    max_values = 100

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin) -> list[tuple[Any, str]]:
        field = self.parameter_name
        rows = model_admin.get_queryset(request).order_by(field).values_list(field, flat=True)
        values: list[tuple[Any, str]] = []
        value = rows.first()
        while value is not None and len(values) < self.max_values:
            values.append((value, str(value)))
            value = rows.filter(**{f"{field}__gt": value}).first()
        return values

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.parameter_name: value})


class ReadOnlyAdmin(ModelAdmin):
    """Viewing needs the model's view permission; nothing can be added, changed or deleted."""

    show_full_result_count = False  # no COUNT(*) of the whole table on every page
    paginator = CappedPaginator
    # Counts beside each filter's choices would count the list once per choice.
    show_facets = admin.ShowFacets.NEVER

    class Media:
        # The lists fit a laptop screen: long column titles and values wrap.
        css = {"all": ["eduzz_webhooks/changelist.css"]}

    # The most ids a search filters its list by; past them, it compares the text.
    search_ids = 10_000

    def search_lookups(self, word: str) -> SearchLookups | None:
        """Where ``get_search_results`` looks for ``word``; None for Django's search."""
        return None

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """The rows one of whose ``search_lookups`` tables matches every word of the search.

        Within a table, as in Django's search, each word may match any of its
        lookups. A table's matching ids, read first with no join, filter the
        list; past its share of ``search_ids`` (and of the query parameters the
        database takes) the table is compared through a join, as Django does.
        No row matches twice: the paths are forward foreign keys.
        """
        found = [self.search_lookups(word) for word in search_words(search_term)]
        per_word = [tables for tables in found if tables is not None]
        if not per_word or len(per_word) < len(found):
            return super().get_search_results(request, queryset, search_term)
        share = self.search_ids // len(per_word[0])
        max_params = connections[queryset.db].features.max_query_params
        if max_params:  # the database's limit (SQLite's), a few parameters left for the rest
            share = min(share, max_params // (len(per_word[0]) + 1))
        share = max(1, share)
        matches = Q()
        for path, (model, _lookups) in per_word[0].items():
            words = [tables[path][1] for tables in per_word]
            rows = model._default_manager.filter(every_word(words)).order_by()
            ids = list(rows.values_list("pk", flat=True)[: share + 1])
            if len(ids) > share:
                prefix = f"{path}__" if path else ""
                matches |= every_word(
                    [[(prefix + lookup, value) for lookup, value in word] for word in words]
                )
            elif ids:
                matches |= Q(**{f"{path}__in" if path else "pk__in": ids})
        if not matches:
            return queryset.none(), False
        return queryset.filter(matches), False

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        """Django's rule, and no date filter beyond the days of the dates kept, nor NUL.

        Such a filter (``?downloaded_at__gte=0001-01-01``,
        ``?downloaded_at__year=9999``, ``?event_type=%00``), typed in a URL,
        matches no row, and Django's date arithmetic or the database would
        fail on it (PostgreSQL takes no NUL): the admin answers 400, as for any
        lookup it does not allow.
        """
        return (
            "\x00" not in value
            and not beyond_kept_dates(self.model, lookup, value)
            and super().lookup_allowed(lookup, value, request)
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The view permission alone: Django's default also lets the change permission view,
        # which here allows nothing.
        codename = get_permission_codename("view", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

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
    """Lists annotated with their number of downloads.

    Each row's count is a subquery on the index of its downloads' foreign key,
    so a page counts the downloads of the rows it shows, not of the whole
    table (as grouping a join of every download would).
    """

    # The read-only field of an object's page that lists its downloads: shown only
    # to users who may see downloads, as its links would refuse anyone else.
    downloads_panel = ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        key = self.model._meta.get_field("downloads").field.name
        downloads = (
            FileDownload.objects.filter(**{key: OuterRef("pk")})
            .order_by()
            .values(key)
            .annotate(n=Count("*"))
            .values("n")
        )
        count = Coalesce(Subquery(downloads), 0)
        queryset: QuerySet[Any] = super().get_queryset(request).annotate(download_count=count)
        return queryset

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
