"""The actions that change something: erasing learners (LGPD) and replaying events.

Each needs its own permission (``erase``, ``replay``): the ModelAdmin that lists
one answers it in ``has_<permission>_permission``.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import privacy, processing
from ..models import Learner, WebhookEvent
from .base import ModelAdmin


@admin.action(description=_("Erase personal data (LGPD)"), permissions=["erase"])
def erase_personal_data(
    model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Learner]
) -> None:
    try:
        reports = privacy.erase_learners(queryset.values_list("email", flat=True))
    except ValueError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return
    erased = [report for report in reports if report.found]
    if erased:
        count = sum(report.learners for report in erased)
        model_admin.message_user(
            request,
            ngettext(
                "Erased the personal data of %(count)d learner: %(downloads)d download(s) "
                "kept, %(payloads)d stored event(s) scrubbed.",
                "Erased the personal data of %(count)d learners: %(downloads)d download(s) "
                "kept, %(payloads)d stored event(s) scrubbed.",
                count,
            )
            % {
                "count": count,
                "downloads": sum(report.downloads for report in erased),
                "payloads": sum(report.payloads for report in erased),
            },
            messages.SUCCESS,
        )
    if skipped := len(reports) - len(erased):
        model_admin.message_user(
            request,
            ngettext(
                "%(count)d selected learner had no personal data left (already erased).",
                "%(count)d selected learners had no personal data left (already erased).",
                skipped,
            )
            % {"count": skipped},
            messages.WARNING,
        )


# A replay reports one message per outcome that occurred, at the level it calls for.
REPLAY_LEVELS = {
    processing.Outcome.FAILED: messages.ERROR,
    processing.Outcome.SKIPPED: messages.WARNING,
}


@admin.action(description=_("Replay the selected events"), permissions=["replay"])
def replay(model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
    counts: Counter[processing.Outcome] = Counter()
    for event_id, status in queryset.values_list("event_id", "status").iterator():
        # Claimed from the status just read: of two concurrent replays of one event
        # (another admin, a re-delivery from Eduzz), one runs it and the other skips it.
        event = processing.claim(event_id, status)
        counts[processing.process(event).outcome if event else processing.Outcome.SKIPPED] += 1
    for outcome in processing.Outcome:
        if count := counts[outcome]:
            model_admin.message_user(
                request,
                ngettext(
                    "Replay of %(count)d event: %(outcome)s.",
                    "Replay of %(count)d events: %(outcome)s.",
                    count,
                )
                % {"count": count, "outcome": outcome.label},
                REPLAY_LEVELS.get(outcome, messages.SUCCESS),
            )
