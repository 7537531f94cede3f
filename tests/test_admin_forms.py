"""The insight page's period (forms.py): defaults, limits and clear refusals."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks.testing import CourseFactory, FileDownloadFactory

pytestmark = pytest.mark.django_db

INSIGHT = "admin:eduzz_webhooks_filedownload_insight"


def test_period_defaults_to_the_last_30_days(viewer):
    today = timezone.localdate()
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=timezone.get_current_timezone())
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=29))
    FileDownloadFactory(downloaded_at=noon - dt.timedelta(days=30))
    context = viewer.get(reverse(INSIGHT)).context
    assert len(context["days"]) == 30
    assert (context["start"], context["end"]) == (today - dt.timedelta(days=29), today)
    assert context["total"] == 1
    assert context["form"]["start"].value() == today - dt.timedelta(days=29)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"start": "2024-02-30"}, "Enter a valid date."),
        ({"end": "yesterday"}, "Enter a valid date."),
        (
            {"start": "2024-03-02", "end": "2024-03-01"},
            "The start date must not be after the end date.",
        ),
        ({"start": "2023-01-01", "end": "2024-01-02"}, "Choose a period of at most 366 days."),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "These dates are out of range."),
        ({"end": "0001-01-05"}, "These dates are out of range."),  # was a 500
        ({"start": "0001-01-01", "end": "0001-01-02"}, "These dates are out of range."),
    ],
)
def test_bad_periods_are_refused_clearly(viewer, params, error):
    FileDownloadFactory()
    response = viewer.get(reverse(INSIGHT), params)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "days" not in response.context
    assert 'class="errornote"' in response.content.decode()


def test_a_full_year_is_accepted(viewer):
    response = viewer.get(reverse(INSIGHT), {"start": "2024-01-01", "end": "2024-12-31"})
    assert len(response.context["days"]) == 366


def test_course_defaults_to_every_course(viewer):
    FileDownloadFactory()
    response = viewer.get(reverse(INSIGHT))
    assert response.context["course"] is None
    assert "All courses" in response.content.decode()


def test_course_is_chosen_by_its_id(viewer):
    download = FileDownloadFactory()
    response = viewer.get(reverse(INSIGHT), {"course": download.course_id})
    assert response.context["course"] == download.course
    assert f'<option value="{download.course_id}" selected>' in response.content.decode()


@pytest.mark.parametrize("course", ["999999", "abc"])
def test_an_unknown_course_is_refused_clearly(viewer, course):
    response = viewer.get(reverse(INSIGHT), {"course": course})
    assert "Select a valid choice." in response.content.decode()
    assert "days" not in response.context


def test_course_names_are_escaped_in_the_select(viewer):
    course = CourseFactory(title="<b>Álgebra & co</b>")
    content = viewer.get(reverse(INSIGHT)).content.decode()
    assert f'<option value="{course.pk}">&lt;b&gt;Álgebra &amp; co&lt;/b&gt;</option>' in content
