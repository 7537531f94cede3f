"""The webhook endpoint: read, verify, parse, then hand over to processing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import connections, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import processing
from .conf import conf
from .payloads import Envelope, read_envelope
from .signature import is_valid

logger = logging.getLogger(__name__)


def _non_atomic_everywhere(view: Callable[..., Any]) -> Callable[..., Any]:
    """``transaction.non_atomic_requests`` for every database: a router may give the app one."""
    for alias in connections:
        view = transaction.non_atomic_requests(using=alias)(view)
    return view


# No CSRF token (the signature is the proof), and transactions of its own even
# under ATOMIC_REQUESTS: the signals must follow the commit of the records.
@method_decorator([csrf_exempt, _non_atomic_everywhere], name="dispatch")
class WebhookView(View):
    """``POST`` endpoint for every Eduzz event; every answer is JSON."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        limit = conf.MAX_BODY_SIZE
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
            body = request.body if size <= limit else b""
        except ValueError:
            return _reject(request, 400, _("The Content-Length header is not a number."))
        except RequestDataTooBig:  # Django's own DATA_UPLOAD_MAX_MEMORY_SIZE
            body, size = b"", limit + 1
        size = max(size, len(body))
        if size > limit:
            return _reject(
                request,
                413,
                _("The body is larger than MAX_BODY_SIZE (%(limit)d bytes).") % {"limit": limit},
                size=size,
            )

        signature = request.headers.get("x-signature")
        if conf.VERIFY_SIGNATURE and not is_valid(signature, body, conf.SECRETS):
            reason = (
                _("The x-signature header is missing.")
                if signature is None
                else _("The x-signature header does not match the body.")
            )
            return _reject(request, 401, reason, size=len(body))

        envelope = read_envelope(body)
        if envelope.event_type == processing.PING and not envelope.error:
            return JsonResponse({"detail": _("pong")})

        max_age = conf.MAX_EVENT_AGE
        sent_at = envelope.sent_at
        if max_age is not None and sent_at and (timezone.now() - sent_at).total_seconds() > max_age:
            return _reject(
                request, 400, _("The event's sentDate is older than MAX_EVENT_AGE allows.")
            )

        try:
            result = receive(envelope)
        except processing.UNAVAILABLE as exc:
            logger.error("Eduzz webhook: database unavailable (%s)", type(exc).__name__)
            detail = _("The database is unavailable; please retry later.")
            return JsonResponse({"detail": detail}, status=503)
        except Exception:
            logger.exception("Eduzz webhook: unexpected error")
            detail = _("Internal error; the delivery was not stored.")
            return JsonResponse({"detail": detail}, status=500)
        if result.outcome == processing.Outcome.DUPLICATE:
            detail = _("Duplicate event: already received.")
        else:
            detail = envelope.error or _("Event received.")
        return JsonResponse(
            {"detail": detail, "id": envelope.event_id, "status": result.outcome.value}
        )

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> JsonResponse:
        detail = _('Method "%(method)s" not allowed.') % {"method": request.method}
        return JsonResponse({"detail": detail}, status=405, headers={"Allow": "POST"})


def receive(envelope: Envelope) -> processing.Result:
    """:func:`processing.receive`, the event queued for a task when ``PROCESS_IN_BACKGROUND`` is on.

    Here, not in ``processing``, which knows nothing of the background module.
    """
    if not conf.PROCESS_IN_BACKGROUND:
        return processing.receive(envelope)
    from .tasks import enqueue  # needs the Tasks framework: only in background mode

    return processing.receive(envelope, enqueue=enqueue)


def _reject(request: HttpRequest, code: int, detail: str, size: int | None = None) -> JsonResponse:
    # Enough to debug a rejected delivery, never the body or a secret.
    logger.warning(
        "Eduzz webhook rejected with %d: %s (body %s bytes, from %s)",
        code,
        detail,
        size if size is not None else request.META.get("CONTENT_LENGTH", "?"),
        request.META.get("REMOTE_ADDR", "?"),
    )
    return JsonResponse({"detail": detail}, status=code)
