"""Dates at the ends of those the app keeps, on every page, in any time zone; date filters
beyond them, a lookup the admin does not allow (ReadOnlyAdmin.lookup_allowed, the insight
form)."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks.models import FileDownload, Learner, WebhookEvent
from eduzz_webhooks.payloads import EARLIEST, LATEST
from eduzz_webhooks.testing import FileDownloadFactory, sample_payload
from tests.conftest import EXTREME_ZONES, date_choices

pytestmark = pytest.mark.django_db

DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"
EVENTS = "admin:eduzz_webhooks_webhookevent_changelist"
EXPORT = "admin:eduzz_webhooks_filedownload_export"
INSIGHT = "admin:eduzz_webhooks_filedownload_insight"


def utc_text(instant):
    return instant.replace(tzinfo=None).isoformat() + "Z"


@pytest.fixture
def edges(deliver):
    """Downloads at the earliest and the latest date kept, sent at those dates too."""
    for number, instant in enumerate([EARLIEST, LATEST]):
        payload = sample_payload(
            "nutror.file_downloaded",
            createdAt=utc_text(instant),
            learner={"email": f"edge{number}@example.com", "name": f"Edge {number}"},
            lesson={"id": str(number), "title": f"Lesson {number}"},
        )
        payload["sentDate"] = utc_text(instant)
        assert deliver(payload).json()["status"] == "processed"
    return list(FileDownload.objects.order_by("downloaded_at"))


@pytest.mark.parametrize("zone", EXTREME_ZONES)
def test_the_earliest_and_latest_dates_kept_show_on_every_page(admin_client, settings, zone, edges):
    settings.TIME_ZONE = zone
    assert [d.downloaded_at for d in edges] == [EARLIEST, LATEST]
    for url, field in [(DOWNLOADS, "downloaded_at"), (EVENTS, "received_at")]:
        response = admin_client.get(reverse(url))
        assert response.status_code == 200
        for query in date_choices(response, field).values():
            assert admin_client.get(reverse(url), query).status_code == 200, query
    for download in edges:
        local = timezone.localtime(download.downloaded_at)
        # Its year, month and day typed in the URL, one after the other, open the list.
        # They list it where the database takes dates apart in the time zone: MariaDB's
        # CONVERT_TZ leaves a date outside 1970-2038 in UTC (the insight's links are ranges).
        drill = {}
        for part in ("year", "month", "day"):
            drill[f"downloaded_at__{part}"] = getattr(local, part)
            response = admin_client.get(reverse(DOWNLOADS), drill)
            assert response.status_code == 200, drill
            if connection.vendor != "mysql":
                assert list(response.context["cl"].result_list) == [download]
        for url in (
            reverse("admin:eduzz_webhooks_filedownload_change", args=[download.pk]),
            reverse("admin:eduzz_webhooks_learner_change", args=[download.learner_id]),
            reverse("admin:eduzz_webhooks_webhookevent_change", args=[download.event_id]),
        ):
            assert admin_client.get(url).status_code == 200, url
        day = local.date().isoformat()
        response = admin_client.get(reverse(INSIGHT), {"start": day, "end": day})
        assert response.status_code == 200
        assert response.context["total"] == 1
        # Its link to the day's downloads lists this one.
        listed = admin_client.get(response.context["period_url"])
        assert list(listed.context["cl"].result_list) == [download]
    response = admin_client.get(reverse(EXPORT))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row[0] for row in rows[1:]] == [
        timezone.localtime(d.downloaded_at).isoformat() for d in reversed(edges)
    ]
    assert sorted(WebhookEvent.objects.values_list("sent_at", flat=True)) == [EARLIEST, LATEST]
    assert Learner.objects.count() == 2


BEYOND = [
    {"downloaded_at__gte": "0001-01-01"},
    {"downloaded_at__gte": "0001-12-31T00:00:00+00:00"},  # in year 1 in every zone
    {"downloaded_at__lt": "9999-12-31T23:59:59+00:00"},
    {"downloaded_at__gt": "2023-09-25T19:04:09+23:59"},  # an offset PostgreSQL refuses
    {"downloaded_at": "9999-12-31"},
    {"downloaded_at__in": "2023-09-25T00:00:00+00:00,0001-01-01T00:00:00+00:00"},
    {"downloaded_at__range": "0001-01-01T00:00:00+00:00,2023-01-01T00:00:00+00:00"},
    {"downloaded_at__date": "0001-01-01"},
    {"downloaded_at__year": "9999"},
    {"downloaded_at__year": "1"},
    {"downloaded_at__year": "99999999999999999999"},
    {"downloaded_at__year__gte": "10000"},
    {"downloaded_at__year": "9999", "downloaded_at__month": "12", "downloaded_at__day": "31"},
]


@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Pacific/Kiritimati"])
@pytest.mark.parametrize("params", BEYOND)
def test_a_download_filter_beyond_the_dates_kept_is_not_allowed(
    admin_client, settings, zone, params
):
    settings.TIME_ZONE = zone
    FileDownloadFactory()
    assert admin_client.get(reverse(DOWNLOADS), params).status_code == 400
    # Nor in the export of that list, which exports nothing.
    response = admin_client.get(reverse(EXPORT), params)
    assert response.status_code == 400
    assert not response.streaming


@pytest.mark.parametrize(
    "params",
    [
        {"received_at__year": "9999", "received_at__month": "12", "received_at__day": "31"},
        {"received_at__gte": "0001-01-01"},
        {"sent_at__gte": "0001-01-01"},
        {"sent_at__lt": "9999-12-31T23:00:00-12:00"},
        {"processed_at__year": "1"},
        {"processed_at__date__gt": "9999-01-01"},
    ],
)
def test_an_event_filter_beyond_the_dates_kept_is_not_allowed(admin_client, settings, params):
    settings.TIME_ZONE = "Etc/GMT+12"
    assert admin_client.get(reverse(EVENTS), params).status_code == 400
    assert admin_client.get(reverse(EVENTS)).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"downloaded_at__gte": EARLIEST.isoformat(), "downloaded_at__lte": LATEST.isoformat()},
        {"downloaded_at__year": "2"},
        {"downloaded_at__year": "9998", "downloaded_at__month": "12", "downloaded_at__day": "31"},
        {"downloaded_at__date": "9998-12-31"},
        {"downloaded_at__month": "12"},  # without a year: any December
    ],
)
def test_date_filters_within_the_dates_kept_list_what_they_match(admin_client, settings, params):
    settings.TIME_ZONE = "Pacific/Kiritimati"
    FileDownloadFactory()
    response = admin_client.get(reverse(DOWNLOADS), params)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"downloaded_at__month": "99999999999999999999"},
        {"downloaded_at__year": "2023", "downloaded_at__month": "99999999999999999999"},
        {"downloaded_at__year": "2023", "downloaded_at__month": "2", "downloaded_at__day": "30"},
        {"downloaded_at__day": "-99999999999999999999"},
        {"downloaded_at__month": "13", "downloaded_at__day": "0"},
    ],
)
def test_a_month_or_day_no_calendar_has_lists_nothing(admin_client, settings, params):
    settings.TIME_ZONE = "Pacific/Kiritimati"
    FileDownloadFactory()
    response = admin_client.get(reverse(DOWNLOADS), params)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    "params",
    [{"end": "0001-01-05"}, {"start": "9999-12-31"}, {"start": "0001-12-31", "end": "0002-01-01"}],
)
@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Pacific/Kiritimati"])
def test_an_insight_period_beyond_the_dates_kept_is_refused(admin_client, settings, zone, params):
    settings.TIME_ZONE = zone
    FileDownloadFactory()
    response = admin_client.get(reverse(INSIGHT), params)
    assert response.status_code == 200
    assert "These dates are out of range." in response.content.decode()
