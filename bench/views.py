"""The comparison receivers: two floors and the receiver a user would write by hand."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
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

from . import SECRET
from .models import (
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
