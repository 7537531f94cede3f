"""The webhook endpoint: read, verify, parse, then hand over to processing."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import transaction
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import processing
from .conf import conf
from .exceptions import InvalidEnvelope
from .payloads import parse_envelope
from .signature import is_valid

logger = logging.getLogger(__name__)

# x-signature, as WSGI and ASGI pass it (read from META: request.headers would
# copy every header on each delivery).
SIGNATURE_HEADER = "HTTP_X_SIGNATURE"


class WebhookView(APIView):
    """``POST`` endpoint for every Eduzz event. No login, no CSRF: the signature is the proof."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    renderer_classes = [JSONRenderer]
    parser_classes: list[Any] = []  # the raw body is read and parsed here, once
    metadata_class = None  # POST only: OPTIONS describes nothing (405)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Signals must follow the commit of the records, so the view manages
        # its own transactions even under ATOMIC_REQUESTS.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # Always JSON, without parsing Accept: an Accept header or a ?format=
        # that JSON can't satisfy must not refuse (406, or 404 for ?format=)
        # an authentic delivery.
        return _RENDERER, _RENDERER.media_type

    def perform_authentication(self, request: Request) -> None:
        # Nobody logs in here (the signature is checked below): don't build a
        # request.user that nothing reads.
        pass

    def post(self, request: Request) -> HttpResponse:
        limit = conf.MAX_BODY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._reject(request, 400, _("The Content-Length header is not a number."))
        if declared > limit:
            return self._too_large(request, declared, limit)
        try:
            body = request.body
        except RequestDataTooBig:
            return self._too_large(request, declared, limit)
        if len(body) > limit:
            return self._too_large(request, len(body), limit)

        if conf.VERIFY_SIGNATURE and not is_valid(
            request.META.get(SIGNATURE_HEADER), body, conf.SECRETS
        ):
            reason = (
                _("The x-signature header is missing.")
                if SIGNATURE_HEADER not in request.META
                else _("The x-signature header does not match the body.")
            )
            return self._reject(request, 401, reason, size=len(body))

        try:
            envelope = parse_envelope(body)
        except InvalidEnvelope as exc:
            return self._reject(request, 400, str(exc), size=len(body))

        if envelope.event_type == processing.PING:
            return _Answer({"detail": _("pong")})

        max_age = conf.MAX_EVENT_AGE
        if max_age is not None and _older_than(envelope.sent_at, max_age):
            return self._reject(
                request, 400, _("The event's sentDate is older than MAX_EVENT_AGE allows.")
            )

        result = processing.receive(envelope)
        return _Answer(
            {
                "detail": _("Duplicate event: already received.")
                if result.outcome is processing.Outcome.DUPLICATE
                else _("Event received."),
                "id": envelope.event_id,
                "status": result.outcome.value,
            }
        )

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, processing.UNAVAILABLE):
            logger.error("Eduzz webhook: database unavailable (%s)", type(exc).__name__)
            return Response(
                {"detail": _("The database is unavailable; please retry later.")},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if isinstance(exc, (Http404, PermissionDenied)):
            # Django's own exceptions, which DRF answers as 404/403: JSON, like the rest.
            return super().handle_exception(exc)
        if not isinstance(exc, APIException):
            logger.exception("Eduzz webhook: unexpected error")
            return Response(
                {"detail": _("Internal error; the delivery was not stored.")},
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        return super().handle_exception(exc)

    def _too_large(self, request: Request, size: int, limit: int) -> HttpResponse:
        return self._reject(
            request,
            413,
            _("The body is larger than MAX_BODY_SIZE (%(limit)d bytes).") % {"limit": limit},
            size=size,
        )

    def _reject(
        self, request: Request, code: int, detail: str, size: int | None = None
    ) -> HttpResponse:
        # Enough to debug a rejected delivery, never the body or a secret.
        logger.warning(
            "Eduzz webhook rejected with %d: %s (body %s bytes, from %s)",
            code,
            detail,
            size if size is not None else request.META.get("CONTENT_LENGTH", "?"),
            request.META.get("REMOTE_ADDR", "?"),
        )
        return _Answer({"detail": detail}, status=code)


_RENDERER = JSONRenderer()


class _Answer(HttpResponse):
    """A JSON answer, rendered by DRF's JSONRenderer at once.

    A DRF ``Response`` would defer the same rendering through Django's
    template-response machinery, which costs more than the rendering itself
    on this endpoint's hot path; every answer here is JSON anyway. ``data``
    is kept, as on a ``Response``, for tests that read it.
    """

    def __init__(self, data: dict[str, Any], status: int = status.HTTP_200_OK) -> None:
        super().__init__(_RENDERER.render(data), status=status, content_type=_RENDERER.media_type)
        self.data = data


def _older_than(sent_at: dt.datetime | None, seconds: float) -> bool:
    return sent_at is not None and (timezone.now() - sent_at).total_seconds() > seconds
