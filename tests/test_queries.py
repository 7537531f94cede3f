"""The hot path's database round trips, pinned: a new query fails these tests.

Transactional tests, so that what is counted is what production runs (no
test savepoints). Each statement is named by its verb and the app's model it
touches (``"INSERT webhookevent"``); SQLite's BEGIN and COMMIT, which only it
sends through Django's cursor, are left out except where a test is about them.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eduzz_webhooks.models import Course
from eduzz_webhooks.testing import FileDownloadFactory, post_event, sample_payload

pytestmark = pytest.mark.django_db(transaction=True)

TABLES = {
    connection.ops.quote_name(model._meta.db_table): model._meta.model_name
    for model in apps.get_app_config("eduzz_webhooks").get_models()
}


def named(sql):
    verb = sql.split(" ", 1)[0]
    if verb in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"):
        return verb
    # The table a statement is about: the first named after FROM (a SELECT names its
    # joined tables' columns before), INTO or the verb.
    about = sql.split(" FROM ", 1)[-1] if verb == "SELECT" else sql
    found = [(about.find(quoted), name) for quoted, name in TABLES.items() if quoted in about]
    table = min(found)[1] if found else "another app's"
    return f"{verb} {table}"


def all_statements(client, payload):
    # Named from the SQL Django sends, not the text the driver says it ran: mysqlclient
    # keeps no text of a statement that failed (the duplicate's refused INSERT).
    sent = mock.patch.object(connection.ops, "last_executed_query", lambda cursor, sql, p: sql)
    with sent, CaptureQueriesContext(connection) as ctx:
        response = post_event(client, payload)
    assert response.status_code == 200
    return [named(q["sql"]) for q in ctx.captured_queries]


def statements(client, payload):
    return [q for q in all_statements(client, payload) if q not in ("BEGIN", "COMMIT")]


def background(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}


def get_or_create(model):
    return [f"SELECT {model}", "SAVEPOINT", f"INSERT {model}", "RELEASE"]


def test_new_download_with_all_entities_new(client):
    assert statements(client, sample_payload("nutror.file_downloaded")) == [
        "INSERT webhookevent",
        "SELECT lesson",  # with its course and producer: not known yet
        *get_or_create("producer"),
        *get_or_create("course"),
        "SAVEPOINT",  # the lesson: no second read, the first found none
        "INSERT lesson",
        "RELEASE",
        *get_or_create("learner"),
        "INSERT filedownload",
        "UPDATE webhookevent",
    ]


def test_new_download_with_all_entities_known_reads_them_without_writing(client):
    post_event(client, sample_payload("nutror.file_downloaded"))
    FileDownloadFactory.create_batch(5)
    assert statements(client, sample_payload("nutror.file_downloaded")) == [
        "INSERT webhookevent",
        "SELECT lesson",  # with its course and producer, in one query
        "SELECT learner",
        "INSERT filedownload",
        "UPDATE webhookevent",
    ]


def test_a_renamed_entity_costs_one_update(client):
    post_event(client, sample_payload("nutror.file_downloaded"))
    renamed = sample_payload(
        "nutror.file_downloaded",
        course={"hash": "4bba1d18c02755a13ee97521ae61958c3cf9e665", "title": "Novo"},
    )
    queries = statements(client, renamed)
    assert queries.count("UPDATE course") == 1
    assert len(queries) == 6


def test_a_course_moved_to_another_producer_is_found_on_its_own(client):
    post_event(client, sample_payload("nutror.file_downloaded"))
    moved = sample_payload(
        "nutror.file_downloaded", producer={"email": "other@example.com", "name": "Outra"}
    )
    queries = statements(client, moved)
    assert queries[:2] == ["INSERT webhookevent", "SELECT lesson"]
    assert queries.count("UPDATE course") == 1  # its producer
    assert "INSERT producer" in queries
    assert Course.objects.get().producer.email == "other@example.com"


def test_duplicate_delivery(client):
    payload = sample_payload("nutror.file_downloaded")
    post_event(client, payload)
    queries = statements(client, payload)
    assert queries == [
        "INSERT webhookevent",  # refused by the unique constraint
        "ROLLBACK",
        "SELECT webhookevent",  # it is stored: a duplicate
        "UPDATE webhookevent",  # claim if failed: no row
    ]


def test_ping(client):
    assert statements(client, {"id": "p", "event": "ping", "data": {}}) == []


def test_other_event_type(client):
    assert statements(client, sample_payload("nutror.lesson_watched")) == [
        "INSERT webhookevent",
        "UPDATE webhookevent",
    ]


def test_background_mode_delivery_is_two_statements(client, settings):
    background(settings)
    post_event(client, sample_payload("nutror.file_downloaded"))
    assert statements(client, sample_payload("nutror.file_downloaded")) == [
        "INSERT webhookevent",
        "INSERT another app's",  # the event's task, in the same transaction
    ]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="only SQLite logs BEGIN/COMMIT")
def test_records_commit_in_one_transaction(client):
    queries = all_statements(client, sample_payload("nutror.lesson_watched"))
    assert queries == ["BEGIN", "INSERT webhookevent", "COMMIT", "UPDATE webhookevent"]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="only SQLite logs BEGIN/COMMIT")
def test_background_mode_delivery_commits_once(client, settings):
    background(settings)
    queries = all_statements(client, sample_payload("nutror.file_downloaded"))
    assert queries == ["BEGIN", "INSERT webhookevent", "INSERT another app's", "COMMIT"]
