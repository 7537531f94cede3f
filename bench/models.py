"""Tables of the benchmark's comparison receivers and of the load test's signal count."""

from __future__ import annotations

from django.db import models


class RawDelivery(models.Model):
    """Floor B: the raw body, stored and nothing else."""

    body = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"delivery {self.pk}"


class Doorbell(models.Model):
    """The doorbell candidate's one shared row: whether a worker was asked for (bench only).

    The design background mode was not given: the event table is the queue, a
    delivery inserts its event and then reads this row; one that finds it not
    rung rings it (a conditional ``UPDATE``) and would enqueue the worker.
    """

    requested_at = models.DateTimeField(null=True, blank=True)

    PK = 1  # the primary key of the one row

    def __str__(self) -> str:
        return f"doorbell rung at {self.requested_at}"


# The hand-written receiver's own tables: what a user would model without this app.


class NaiveProducer(models.Model):
    email = models.CharField(max_length=254, unique=True)
    name = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.email


class NaiveCourse(models.Model):
    hash = models.CharField(max_length=255, unique=True)
    title = models.TextField(blank=True)
    producer = models.ForeignKey(NaiveProducer, on_delete=models.PROTECT)

    def __str__(self) -> str:
        return self.hash


class NaiveLesson(models.Model):
    course = models.ForeignKey(NaiveCourse, on_delete=models.PROTECT)
    external_id = models.CharField(max_length=255)
    title = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["course", "external_id"], name="bench_naive_lesson")
        ]

    def __str__(self) -> str:
        return self.external_id


class NaiveLearner(models.Model):
    email = models.CharField(max_length=254, unique=True)
    name = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.email


class NaiveDownload(models.Model):
    event_id = models.CharField(max_length=255)
    producer = models.ForeignKey(NaiveProducer, on_delete=models.PROTECT)
    course = models.ForeignKey(NaiveCourse, on_delete=models.PROTECT)
    lesson = models.ForeignKey(NaiveLesson, on_delete=models.PROTECT)
    learner = models.ForeignKey(NaiveLearner, on_delete=models.PROTECT)
    downloaded_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.event_id


class SignalCount(models.Model):
    """One row per signal the load test's receiver got. No unique constraint: duplicates show."""

    signal = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)

    def __str__(self) -> str:
        return f"{self.signal} {self.event_id}"
