from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from eduzz_webhooks.models import (
    Course,
    FileDownload,
    Learner,
    Lesson,
    Producer,
    WebhookEvent,
)


class ProducerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Producer
        django_get_or_create = ["email"]

    email = factory.Sequence(lambda n: f"producer{n}@example.com")
    name = factory.Faker("name", locale="pt_BR")


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    hash = factory.Faker("sha1")
    title = factory.Sequence(lambda n: f"Curso {n}")
    producer = factory.SubFactory(ProducerFactory)


class LessonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lesson

    course = factory.SubFactory(CourseFactory)
    external_id = factory.Sequence(str)
    title = factory.Sequence(lambda n: f"Aula {n}")


class LearnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Learner

    email = factory.Sequence(lambda n: f"learner{n}@example.com")
    name = factory.Faker("name", locale="pt_BR")


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    event_id = factory.Faker("uuid4")
    event_type = "nutror.file_downloaded"
    payload = factory.LazyAttribute(lambda o: {"id": o.event_id, "event": o.event_type, "data": {}})
    status = WebhookEvent.Status.PROCESSED
    attempts = 1


class FileDownloadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FileDownload

    event = factory.SubFactory(WebhookEventFactory)
    lesson = factory.SubFactory(LessonFactory)
    course = factory.SelfAttribute("lesson.course")
    producer = factory.SelfAttribute("lesson.course.producer")
    learner = factory.SubFactory(LearnerFactory)
    downloaded_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))
