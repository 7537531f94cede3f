"""The CSV export (export.py): every column, the list's filters, safe cells, streamed."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eduzz_webhooks.admin import export
from eduzz_webhooks.models import FileDownload
from eduzz_webhooks.testing import (
    CourseFactory,
    FileDownloadFactory,
    LearnerFactory,
    LessonFactory,
    ProducerFactory,
)

pytestmark = pytest.mark.django_db

EXPORT = "admin:eduzz_webhooks_filedownload_export"
DOWNLOADS = "admin:eduzz_webhooks_filedownload_changelist"


def csv_rows(response):
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def filedownload_queries(queries):
    table = connection.ops.quote_name(FileDownload._meta.db_table)  # "..." or `...` (MariaDB)
    return [q["sql"] for q in queries if table in q["sql"]]


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_export_writes_every_column(viewer):
    download = FileDownloadFactory(
        downloaded_at=dt.datetime(2024, 3, 2, 2, 30, tzinfo=dt.UTC),
        learner=LearnerFactory(email="ana@example.com", name="Ana Souza"),
        lesson=LessonFactory(
            external_id="L-9",
            title="Aula, com vírgula",
            course=CourseFactory(
                hash="h1", title='Curso "A"', producer=ProducerFactory(email="p@example.com")
            ),
        ),
    )
    response = viewer.get(reverse(EXPORT))
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate()
    assert response["Content-Disposition"] == (
        f'attachment; filename="file-downloads-{today:%Y-%m-%d}.csv"'
    )
    assert csv_rows(response) == [
        [
            "downloaded at (America/Sao_Paulo)",
            "learner e-mail",
            "learner name",
            "course hash",
            "course title",
            "lesson id",
            "lesson title",
            "producer e-mail",
            "event id",
        ],
        [
            "2024-03-01T23:30:00-03:00",
            "ana@example.com",
            "Ana Souza",
            "h1",
            'Curso "A"',
            "L-9",
            "Aula, com vírgula",
            "p@example.com",
            download.event.event_id,
        ],
    ]


def test_export_honours_search_filters_and_order(viewer):
    ana = LearnerFactory(email="ana@example.com")
    course = CourseFactory()
    now = timezone.now()
    old = FileDownloadFactory(learner=ana, downloaded_at=now - dt.timedelta(days=2))
    new = FileDownloadFactory(learner=ana, downloaded_at=now - dt.timedelta(days=1))
    in_course = FileDownloadFactory(lesson=LessonFactory(course=course))
    FileDownloadFactory()

    def events(**params):
        return [row[-1] for row in csv_rows(viewer.get(reverse(EXPORT), params))[1:]]

    assert events(q="ana@example") == [new.event.event_id, old.event.event_id]
    assert events(q="ana@example", o="0") == [old.event.event_id, new.event.event_id]
    assert events(course__id__exact=str(course.pk)) == [in_course.event.event_id]
    assert len(events()) == 4
    # What the list shows, all of its pages: a page number does not limit the export.
    assert len(events(p="2")) == 4


def test_export_with_bad_filters_explains_and_writes_nothing(viewer):
    FileDownloadFactory.create_batch(2)  # two courses: the course filter is on
    response = viewer.get(reverse(EXPORT), {"course__id__exact": "not-a-number"}, follow=True)
    assert response.redirect_chain == [(reverse(DOWNLOADS), 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "These filters are not valid: nothing was exported."
    ]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_export_defuses_formulas(viewer, prefix):
    FileDownloadFactory(
        learner=LearnerFactory(name=f'{prefix}HYPERLINK("http://evil")'),
        lesson=LessonFactory(title=f"{prefix}1+1"),
    )
    (_header, row) = csv_rows(viewer.get(reverse(EXPORT)))
    assert row[2] == f'\'{prefix}HYPERLINK("http://evil")'
    assert row[6] == f"'{prefix}1+1"
    assert not row[0].startswith("'")


def test_export_streams_in_chunks_with_constant_queries(viewer, monkeypatch):
    monkeypatch.setattr(export, "EXPORT_CHUNK_ROWS", 5)

    def run():
        with CaptureQueriesContext(connection) as queries:
            response = viewer.get(reverse(EXPORT))
            chunks = list(response.streaming_content)
        return queries, chunks

    FileDownloadFactory.create_batch(2)
    few, few_chunks = run()
    FileDownloadFactory.create_batch(20)
    many, many_chunks = run()
    assert len(many) == len(few)
    assert len(few_chunks) == 1
    assert len(many_chunks) == 5  # 22 rows by 5: four full chunks and the rest
    assert sum(chunk.count(b"\n") for chunk in many_chunks) == 23
    # One query brings the rows with their learner, course, lesson, producer and event.
    (rows,) = [sql for sql in filedownload_queries(many.captured_queries) if "JOIN" in sql]
    assert "payload" not in rows


@pytest.mark.django_db(transaction=True)
def test_export_reads_its_rows_in_a_transaction_as_the_file_is_sent(viewer, monkeypatch):
    monkeypatch.setattr(export, "EXPORT_CHUNK_ROWS", 2)
    FileDownloadFactory.create_batch(5)
    response = viewer.get(reverse(EXPORT))
    assert not connection.in_atomic_block
    chunks = iter(response.streaming_content)
    next(chunks)  # the header and the first rows: the rest is still to read
    assert connection.in_atomic_block
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Not WITH HOLD, which would compute every row before the first.
            cursor.execute("SELECT bool_and(NOT is_holdable) FROM pg_cursors")
            assert cursor.fetchone() == (True,)
            cursor.execute("SHOW jit")
            assert cursor.fetchone() == ("off",)
    assert len(b"".join(chunks).decode().splitlines()) == 3  # the header and 2 rows read above
    response.close()
    assert not connection.in_atomic_block
