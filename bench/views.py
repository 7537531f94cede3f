"""The comparison receivers: two floors, the receiver a user would write by hand, the doorbell."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    renderer_classes,
)
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from eduzz_webhooks.conf import conf
from eduzz_webhooks.exceptions import InvalidEnvelope
from eduzz_webhooks.models import WebhookEvent
from eduzz_webhooks.payloads import parse_envelope
from eduzz_webhooks.signature import is_valid

from . import SECRET
from .models import (
    Doorbell,
    NaiveCourse,
    NaiveDownload,
    NaiveLearner,
    NaiveLesson,
    NaiveProducer,
    RawDelivery,
)

OK = b'{"status": "ok"}'


def ready(request: HttpRequest) -> HttpResponse:
    """Readiness probe: which worker answered."""
    return HttpResponse(str(os.getpid()), content_type="text/plain")


@csrf_exempt
def floor_a(request: HttpRequest) -> HttpResponse:
    """Floor A: read the body, answer 200."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    request.body  # noqa: B018 - reading it is the point
    return HttpResponse(OK, content_type="application/json")


@csrf_exempt
def floor_b(request: HttpRequest) -> HttpResponse:
    """Floor B: floor A plus one durable insert of the raw body."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    RawDelivery.objects.create(body=request.body.decode())
    return HttpResponse(OK, content_type="application/json")


# -- the doorbell: the other shape background mode could have taken -------------------


@csrf_exempt
def doorbell(request: HttpRequest) -> HttpResponse:
    """Background mode's request path with the event table as the queue (bench only).

    The app's own checks (body size, signature, envelope, event age), then the
    event inserted on its own (autocommitted: one statement, one commit), then
    one read of the shared ``Doorbell`` row; a delivery that finds it not rung
    rings it with a conditional ``UPDATE``. With no worker running that is the
    first delivery of a scenario only; it would also enqueue the worker, which
    this receiver leaves out (there is no such task to enqueue).
    """
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    body = request.body
    if len(body) > conf.MAX_BODY_SIZE:
        return JsonResponse({"detail": "too large"}, status=413)
    if conf.VERIFY_SIGNATURE and not is_valid(
        request.headers.get("x-signature"), body, conf.SECRETS
    ):
        return JsonResponse({"detail": "bad signature"}, status=401)
    try:
        envelope = parse_envelope(body)
    except InvalidEnvelope as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    max_age = conf.MAX_EVENT_AGE
    sent_at = envelope.sent_at
    if max_age is not None and sent_at and (timezone.now() - sent_at).total_seconds() > max_age:
        return JsonResponse({"detail": "too old"}, status=400)
    event = WebhookEvent(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        payload=envelope.payload,
        sent_at=envelope.sent_at,
        status=WebhookEvent.Status.RECEIVED,
        attempts=0,
        claimed_at=None,
    )
    try:
        event.save(force_insert=True)  # autocommit: committed on its own
    except IntegrityError:
        status = "duplicate"
    else:
        status = "queued"
        _ring()
    return JsonResponse({"detail": "Event received.", "id": envelope.event_id, "status": status})


def _ring() -> None:
    """After the event's commit: read the doorbell; ring it if nobody has."""
    bell = Doorbell.objects.filter(pk=Doorbell.PK)
    rung = list(bell.values_list("requested_at", flat=True))
    if rung and rung[0] is not None:
        return  # a worker is asked for already and will see the event
    if not rung:  # the bench empties its tables between scenarios
        Doorbell.objects.bulk_create([Doorbell(pk=Doorbell.PK)], ignore_conflicts=True)
    bell.filter(requested_at__isnull=True).update(requested_at=timezone.now())


# -- the naive receiver ------------------------------------------------------------


class _Person(serializers.Serializer[Any]):
    email = serializers.EmailField()
    name = serializers.CharField(allow_blank=True, required=False, default="")


class _Course(serializers.Serializer[Any]):
    hash = serializers.CharField()
    title = serializers.CharField(allow_blank=True, required=False, default="")


class _Lesson(serializers.Serializer[Any]):
    id = serializers.CharField()
    title = serializers.CharField(allow_blank=True, required=False, default="")


class _Data(serializers.Serializer[Any]):
    producer = _Person()
    learner = _Person()
    course = _Course()
    lesson = _Lesson()
    createdAt = serializers.DateTimeField()


class NaiveEventSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    event = serializers.CharField()
    # Named as in the envelope; DRF's metaclass moves it off the class, so the
    # ``data`` property stays intact.
    data = _Data()  # type: ignore[assignment]


@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
@renderer_classes([JSONRenderer])
def naive(request: Request) -> Response:
    """What a user writes by hand: check the signature, validate, get_or_create, create."""
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
        return Response({"detail": "bad signature"}, status=401)
    serializer = NaiveEventSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    event = serializer.validated_data
    data = event["data"]
    producer, _ = NaiveProducer.objects.get_or_create(
        email=data["producer"]["email"], defaults={"name": data["producer"]["name"]}
    )
    course, _ = NaiveCourse.objects.get_or_create(
        hash=data["course"]["hash"],
        defaults={"title": data["course"]["title"], "producer": producer},
    )
    lesson, _ = NaiveLesson.objects.get_or_create(
        course=course, external_id=data["lesson"]["id"], defaults={"title": data["lesson"]["title"]}
    )
    learner, _ = NaiveLearner.objects.get_or_create(
        email=data["learner"]["email"], defaults={"name": data["learner"]["name"]}
    )
    NaiveDownload.objects.create(
        event_id=event["id"],
        producer=producer,
        course=course,
        lesson=lesson,
        learner=learner,
        downloaded_at=data["createdAt"],
    )
    return Response({"status": "ok"})
