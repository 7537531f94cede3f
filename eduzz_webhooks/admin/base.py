"""What every screen of the app shares: read-only lists, download counts, who sees downloads."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import FileDownload

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


class ReadOnlyAdmin(ModelAdmin):
    """Viewing needs the model's view permission; nothing can be added, changed or deleted."""

    show_full_result_count = False  # no COUNT(*) of the whole table on every page

    class Media:
        # The lists fit a laptop screen: long column titles and values wrap.
        css = {"all": ["eduzz_webhooks/changelist.css"]}

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
