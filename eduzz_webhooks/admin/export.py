"""The download list as CSV: streamed in chunks, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ALL_VAR, PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .base import ReadOnlyAdmin

EXPORT_CHUNK_ROWS = 2000
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Columns of the export: (lookup, header). values_list() joins the related rows in
# the one query and leaves out what is not exported (the event's payload). The
# first is the download's date, written in the current time zone.
COLUMNS = [
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


def read_in_one_transaction(rows: QuerySet[Any, tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """``rows`` read ``EXPORT_CHUNK_ROWS`` at a time, in a transaction of their own.

    Outside a transaction, PostgreSQL declares the server-side cursor ``WITH
    HOLD`` and computes every row before the first; inside one, the file starts
    while the database reads the rest. JIT is off: planned for all the rows,
    the cursor would be compiled for longer than its first rows take.
    """
    connection = connections[rows.db]
    with transaction.atomic(using=rows.db):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield from rows.iterator(chunk_size=EXPORT_CHUNK_ROWS)


def url(model_admin: ReadOnlyAdmin, request: HttpRequest) -> str:
    """The export of the list ``request`` shows: its filters, search and ordering, all pages."""
    query = request.GET.copy()
    for param in (PAGE_VAR, ALL_VAR):
        query.pop(param, None)
    export_url = model_admin.url("export")
    return f"{export_url}?{query.urlencode()}" if query else export_url


def view(model_admin: ReadOnlyAdmin, request: HttpRequest) -> HttpResponseBase:
    """The download list as CSV, with the list's filters, search and ordering."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        model_admin.message_user(
            request,
            gettext("These filters are not valid: nothing was exported."),
            messages.ERROR,
        )
        return HttpResponseRedirect(model_admin.url("changelist"))
    lookups = [lookup for lookup, _header in COLUMNS]
    rows = read_in_one_transaction(changelist.queryset.values_list(*lookups))
    # Taken now: the rows are written after this view returns, when a middleware may
    # have deactivated the request's time zone.
    tz = timezone.get_current_timezone()
    filename = f"file-downloads-{timezone.localdate(timezone=tz):%Y-%m-%d}.csv"
    return StreamingHttpResponse(
        csv_chunks(
            # The date column names the time zone its values are in.
            [f"{COLUMNS[0][1]} ({tz})", *(str(header) for _lookup, header in COLUMNS[1:])],
            ((row[0].astimezone(tz).isoformat(), *row[1:]) for row in rows),
        ),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition_header(True, filename)},
    )
