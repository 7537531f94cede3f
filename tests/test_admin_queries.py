"""The number of queries of every admin list, search and page, pinned.

Each page is requested over a few rows, then over many more of the same kinds:
a page whose queries grow with its rows (a query per row, N+1) fails both.
Rows are dated today, so that each choice of the lists' date filters lists them.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks.models import WebhookEvent
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    WebhookEventFactory,
)
from tests.conftest import date_choices

pytestmark = pytest.mark.django_db

# Every page: the session and the user (2), the user's permissions (2).
REQUEST = 4
# A list: its rows (1) and how many there are, counted up to the cap (1).
LIST = REQUEST + 2
# The list of downloads: the courses of its filter (1); its date filter makes none.
DOWNLOADS = LIST + 1
# A search first looks up the learners, courses and lessons that match (3).
DOWNLOADS_SEARCH = DOWNLOADS + 3
# The list of events: the first and the next event type of its filter (2 here,
# one per type and one more).
EVENTS = LIST + 2
# The learner's page: the learner with their download count (1), their latest downloads (1).
LEARNER_PAGE = REQUEST + 2
# The course's page: the course (1), its producer (1), its lessons' counts (1).
COURSE_PAGE = REQUEST + 3


def changelist(model: str) -> str:
    return reverse(f"admin:eduzz_webhooks_{model}_changelist")


def change(model: str, pk: int) -> str:
    return reverse(f"admin:eduzz_webhooks_{model}_change", args=[pk])


def noon() -> dt.datetime:
    """Noon today in the current time zone: within each choice of the date filters."""
    return timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)


def downloads(count: int, **kwargs):
    return [
        FileDownloadFactory(
            downloaded_at=noon() + dt.timedelta(minutes=n),
            event__received_at=noon() + dt.timedelta(minutes=n),
            **kwargs,
        )
        for n in range(count)
    ]


def pages(download, dated) -> list[tuple[str, str, dict[str, object], int]]:
    """(label, URL, query, queries) of every page, around ``download``.

    ``dated``: the querystrings of the date filter's choices of each list, by its model.
    """
    learner, course = download.learner, download.course
    return [
        ("downloads", changelist("filedownload"), {}, DOWNLOADS),
        ("full e-mail", changelist("filedownload"), {"q": learner.email}, DOWNLOADS_SEARCH),
        ("fragment", changelist("filedownload"), {"q": learner.email[:5]}, DOWNLOADS_SEARCH),
        ("name", changelist("filedownload"), {"q": learner.name}, DOWNLOADS_SEARCH),
        ("course title", changelist("filedownload"), {"q": course.title}, DOWNLOADS_SEARCH),
        ("course filter", changelist("filedownload"), {"course__id__exact": course.pk}, DOWNLOADS),
        ("history link", changelist("filedownload"), {"learner__id__exact": learner.pk}, DOWNLOADS),
        ("by learner", changelist("filedownload"), {"o": "1"}, DOWNLOADS),
        *[
            (f"downloads: {title}", changelist("filedownload"), query, DOWNLOADS)
            for title, query in dated["filedownload"].items()
        ],
        ("download", change("filedownload", download.pk), {}, REQUEST + 6),
        # The export's view: its filter and count (its rows are read as the file is sent).
        ("export", reverse("admin:eduzz_webhooks_filedownload_export"), {}, REQUEST + 2),
        ("events", changelist("webhookevent"), {}, EVENTS),
        ("event id", changelist("webhookevent"), {"q": download.event.event_id}, LIST + 2),
        ("event status", changelist("webhookevent"), {"status__exact": "processed"}, EVENTS),
        *[
            (f"events: {title}", changelist("webhookevent"), query, EVENTS)
            for title, query in dated["webhookevent"].items()
        ],
        ("event page", change("webhookevent", download.event_id), {}, REQUEST + 1),
        ("learners", changelist("learner"), {}, LIST),
        # The learners that match, looked up first (1).
        ("learner search", changelist("learner"), {"q": learner.email}, LIST + 1),
        ("learner page", change("learner", learner.pk), {}, LEARNER_PAGE),
        ("courses", changelist("course"), {}, LIST),
        ("courses by downloads", changelist("course"), {"o": "-3"}, LIST),
        ("course page", change("course", course.pk), {}, COURSE_PAGE),
        ("lessons", changelist("lesson"), {}, LIST),
        ("lesson page", change("lesson", download.lesson_id), {}, REQUEST + 2),
        ("producers", changelist("producer"), {}, LIST),
        ("producer page", change("producer", download.producer_id), {}, REQUEST + 1),
    ]


def test_every_page_makes_its_pinned_queries_whatever_its_rows(viewer, django_assert_num_queries):
    learner = LearnerFactory(email="ana.souza@example.com", name="Ana Souza")
    course = CourseFactory(title="Marketing digital")
    (download,) = downloads(1, learner=learner, lesson=LessonFactory(course=course))
    downloads(2)
    dated = {
        model: date_choices(viewer.get(changelist(model)), field)
        for model, field in [("filedownload", "downloaded_at"), ("webhookevent", "received_at")]
    }
    for _label, url, query, _count in pages(download, dated):
        viewer.get(url, query)  # Django caches the content types the pages link to
    for label, url, query, count in pages(download, dated):
        with django_assert_num_queries(count, info=label):
            assert viewer.get(url, query).status_code == 200
    # Many more rows of each kind: the learner's, the course's, everyone's.
    downloads(15, learner=learner)
    downloads(15, lesson=LessonFactory(course=course))
    downloads(15)
    WebhookEventFactory.create_batch(5, status=WebhookEvent.Status.FAILED, received_at=noon())
    for label, url, query, count in pages(download, dated):
        with django_assert_num_queries(count, info=label):
            assert viewer.get(url, query).status_code == 200
