"""The hot path's database round trips, pinned: a new query fails these tests.

Transactional tests, so that what is counted is what production runs (no
test savepoints). BEGIN and COMMIT are not counted by Django; see the
benchmark for commits.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eduzz_webhooks import tasks
from eduzz_webhooks.models import DrainRequest
from eduzz_webhooks.testing import FileDownloadFactory, post_event, sample_payload

pytestmark = pytest.mark.django_db(transaction=True)


def raw_statements(client, payload):
    with CaptureQueriesContext(connection) as ctx:
        response = post_event(client, payload)
    assert response.status_code == 200
    # PostgreSQL finds-or-inserts shared rows with "WITH new AS (INSERT INTO ...": one
    # statement, counted as the INSERT it starts with.
    return [
        " ".join(q["sql"].removeprefix("WITH new AS (").split(" ", 3)[:3])
        for q in ctx.captured_queries
    ]


def statements(client, payload):
    """The round trips that do work (SQLite also logs its BEGIN and COMMIT)."""
    return [q.split(" ") for q in raw_statements(client, payload) if q not in ("BEGIN", "COMMIT")]


def tables(queries):
    return [" ".join(q) for q in queries]


def test_new_download_with_all_entities_new(client):
    queries = statements(client, sample_payload("nutror.file_downloaded"))
    assert tables(queries) == [
        'INSERT INTO "eduzz_webhooks_webhookevent"',
        'INSERT INTO "eduzz_webhooks_producer"',
        'INSERT INTO "eduzz_webhooks_course"',
        'INSERT INTO "eduzz_webhooks_lesson"',
        'INSERT INTO "eduzz_webhooks_learner"',
        'INSERT INTO "eduzz_webhooks_filedownload"',
        'UPDATE "eduzz_webhooks_webhookevent" SET',
    ]


def test_new_download_with_all_entities_known(client):
    post_event(client, sample_payload("nutror.file_downloaded"))
    FileDownloadFactory.create_batch(5)
    queries = statements(client, sample_payload("nutror.file_downloaded"))
    assert len(queries) == 7
    assert [q[0] for q in queries] == ["INSERT"] * 6 + ["UPDATE"]


def test_a_renamed_entity_costs_one_update(client):
    post_event(client, sample_payload("nutror.file_downloaded"))
    renamed = sample_payload(
        "nutror.file_downloaded",
        course={"hash": "4bba1d18c02755a13ee97521ae61958c3cf9e665", "title": "Novo"},
    )
    queries = tables(statements(client, renamed))
    # PostgreSQL updates (and so locks) only a row that changes; SQLite upserts in one statement.
    course_updates = 1 if connection.vendor == "postgresql" else 0
    assert queries.count('UPDATE "eduzz_webhooks_course" SET') == course_updates
    assert len(queries) == 7 + course_updates


def test_duplicate_delivery(client):
    payload = sample_payload("nutror.file_downloaded")
    post_event(client, payload)
    queries = statements(client, payload)
    assert tables(queries) == [
        'INSERT INTO "eduzz_webhooks_webhookevent"',  # ON CONFLICT DO NOTHING: nothing
        'UPDATE "eduzz_webhooks_webhookevent" SET',  # claim if failed: no row
    ]


def test_ping(client):
    assert statements(client, {"id": "p", "event": "ping", "data": {}}) == []


def test_other_event_type(client):
    queries = statements(client, sample_payload("nutror.lesson_watched"))
    assert tables(queries) == [
        'INSERT INTO "eduzz_webhooks_webhookevent"',
        'UPDATE "eduzz_webhooks_webhookevent" SET',
    ]


def test_background_mode_delivery_while_a_drain_waits(client, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    post_event(client, sample_payload("nutror.file_downloaded"))  # enqueues the drain
    queries = statements(client, sample_payload("nutror.file_downloaded"))
    # This process saw the drain requested less than SETTLE ago: one statement,
    # one commit, no task.
    assert tables(queries) == ['INSERT INTO "eduzz_webhooks_webhookevent"']


def test_background_mode_delivery_reads_the_request_once_a_settle_has_passed(
    client, settings, monkeypatch
):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    monkeypatch.setattr(tasks, "SETTLE", 0)  # what this process saw is stale at once
    post_event(client, sample_payload("nutror.file_downloaded"))  # enqueues the drain
    queries = statements(client, sample_payload("nutror.file_downloaded"))
    assert tables(queries) == [
        'INSERT INTO "eduzz_webhooks_webhookevent"',
        'SELECT "eduzz_webhooks_drainrequest"."requested_at" AS',  # waits: nothing more
    ]


def test_background_mode_delivery_that_enqueues_the_drain(client, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    DrainRequest.objects.create(pk=DrainRequest.PK, requested_at=None)  # a drain started
    queries = statements(client, sample_payload("nutror.file_downloaded"))
    assert tables(queries) == [
        'INSERT INTO "eduzz_webhooks_webhookevent"',
        'SELECT "eduzz_webhooks_drainrequest"."requested_at" AS',  # after the commit
        'UPDATE "eduzz_webhooks_drainrequest" SET',
        'INSERT INTO "django_tasks_database_dbtaskresult"',
    ]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="only SQLite logs BEGIN/COMMIT")
def test_records_commit_in_one_transaction(client):
    queries = raw_statements(client, sample_payload("nutror.file_downloaded"))
    assert queries[0] == "BEGIN"
    assert queries[7] == "COMMIT"  # the event and its five records, together
    assert queries[8:] == ['UPDATE "eduzz_webhooks_webhookevent" SET']  # status, after signals


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="only SQLite logs BEGIN/COMMIT")
def test_background_mode_delivery_is_one_statement_committed_alone(client, settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "PROCESS_IN_BACKGROUND": True}
    post_event(client, sample_payload("nutror.file_downloaded"))  # enqueues the drain
    queries = raw_statements(client, sample_payload("nutror.file_downloaded"))
    assert queries == ['INSERT INTO "eduzz_webhooks_webhookevent"']  # autocommit: no BEGIN
