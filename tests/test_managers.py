"""EntityManager.ensure: shared rows found without locks, written only when they change."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test import Client

from eduzz_webhooks import processing
from eduzz_webhooks.models import Course, Producer
from eduzz_webhooks.payloads import parse_envelope
from eduzz_webhooks.testing import encode, post_event, sample_payload

pytestmark = pytest.mark.django_db(transaction=True)


def test_ensure_creates_then_finds_then_updates_what_changed(django_assert_num_queries):
    producer = Producer.objects.ensure({"email": "p@x.com"}, {"name": "P"})
    with django_assert_num_queries(1):  # found, unchanged: one read
        assert Producer.objects.ensure({"email": "p@x.com"}, {"name": "P"}) == producer
    renamed = Producer.objects.ensure({"email": "p@x.com"}, {"name": "New"})
    assert (renamed.pk, renamed.name) == (producer.pk, "New")
    assert Producer.objects.get().name == "New"


def test_ensure_compares_foreign_keys_without_loading_them(django_assert_num_queries):
    producer = Producer.objects.ensure({"email": "p@x.com"}, {"name": "P"})
    Course.objects.ensure({"hash": "h"}, {"title": "T", "producer_id": producer.pk})
    with django_assert_num_queries(1):
        Course.objects.ensure({"hash": "h"}, {"title": "T", "producer_id": producer.pk})


def test_ensure_absent_creates_without_reading_or_finds_a_row_created_meanwhile(
    django_assert_num_queries,
):
    with django_assert_num_queries(3):  # a savepoint around the INSERT, no SELECT
        producer = Producer.objects.ensure({"email": "p@x.com"}, {"name": "P"}, absent=True)
    # Created since the caller looked: its INSERT is refused, the row is found and updated.
    again = Producer.objects.ensure({"email": "p@x.com"}, {"name": "New"}, absent=True)
    assert (again.pk, again.name) == (producer.pk, "New")
    assert Producer.objects.get().name == "New"


@pytest.mark.concurrency
def test_deliveries_sharing_rows_do_not_wait_for_each_others_locks():
    # A launch: every download names the same producer, course and lesson. One
    # delivery's transaction is held open (say, a host calling processing from its
    # own atomic block); another delivery of the same rows must not wait for it.
    post_event(Client(), sample_payload("nutror.file_downloaded"))  # the rows exist
    held, release = threading.Event(), threading.Event()

    def hold_a_transaction_open():
        try:
            with transaction.atomic():
                envelope = parse_envelope(encode(sample_payload("nutror.file_downloaded")))
                processing.receive(envelope)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a_transaction_open)
    holder.start()
    answers = []
    try:
        assert held.wait(timeout=30)

        def deliver():
            try:
                answers.append(post_event(Client(), sample_payload("nutror.file_downloaded")))
            finally:
                connection.close()

        other = threading.Thread(target=deliver)
        other.start()
        other.join(timeout=10)
        assert not other.is_alive(), "the delivery waited for the open transaction's locks"
    finally:
        release.set()
        holder.join(timeout=30)
    assert answers[0].json()["status"] == "processed"
