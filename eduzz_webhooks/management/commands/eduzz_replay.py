from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop, ngettext_lazy

from ... import processing
from ...conf import conf
from ...models import WebhookEvent
from ..base import EduzzCommand

# How each outcome reads after an event id, and counted in the summary ("3 processed").
OUTCOMES: dict[str, tuple[Any, Any]] = {
    "processed": (
        gettext_lazy("processed"),
        ngettext_lazy("%(count)d processed", "%(count)d processed", "count"),
    ),
    "failed": (
        gettext_lazy("failed"),
        ngettext_lazy("%(count)d failed", "%(count)d failed", "count"),
    ),
    "pending": (
        gettext_lazy("pending"),
        ngettext_lazy("%(count)d pending", "%(count)d pending", "count"),
    ),
    "pruned": (
        gettext_lazy("pruned"),
        ngettext_lazy("%(count)d pruned", "%(count)d pruned", "count"),
    ),
    "skipped": (
        gettext_lazy("skipped"),
        ngettext_lazy("%(count)d skipped", "%(count)d skipped", "count"),
    ),
}


class Command(EduzzCommand):
    help = gettext_noop(
        "Run processing and signals again for stored Eduzz events: the given ids, every "
        "failed event, or events a crashed worker left unprocessed. Each event is claimed "
        "first, so concurrent replays (or a re-delivery) never process one event twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help=_("Eduzz event ids."))
        parser.add_argument(
            "--failed", action="store_true", help=_("Replay every event whose status is failed.")
        )
        parser.add_argument(
            "--pending",
            action="store_true",
            help=_(
                "Replay events still 'received' whose last attempt started more than "
                "--older-than minutes ago (a crashed worker)."
            ),
        )
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="MINUTES",
            help=_(
                "When an unfinished attempt counts as abandoned, for --pending and for "
                "'received' events given by id (default: the ATTEMPT_TIMEOUT setting)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["event_ids"]
        if not (ids or options["failed"] or options["pending"]):
            raise CommandError(_("Give event ids, --failed or --pending."))
        older_than = options["older_than"]
        stale_after = (
            conf.ATTEMPT_TIMEOUT if older_than is None else dt.timedelta(minutes=older_than)
        )
        counts: Counter[str] = Counter()

        def replay(event_id: str, status: str) -> None:
            event = processing.claim(event_id, status, stale_after=stale_after)
            outcome = processing.process(event).outcome.value if event else "skipped"
            counts[outcome] += 1
            self.stdout.write(f"{event_id}: {OUTCOMES[outcome][0]}")

        if ids:
            statuses = dict(
                WebhookEvent.objects.filter(event_id__in=ids).values_list("event_id", "status")
            )
            missing = [i for i in ids if i not in statuses]
            if missing:
                raise CommandError(_("Unknown event ids: %s") % ", ".join(missing))
            for event_id in ids:
                replay(event_id, statuses[event_id])
        selections = []
        if options["failed"]:
            selections.append(
                (WebhookEvent.Status.FAILED, WebhookEvent.objects.filter(status="failed"))
            )
        if options["pending"]:
            cutoff = timezone.now() - stale_after
            selections.append(
                (
                    WebhookEvent.Status.RECEIVED,
                    WebhookEvent.objects.filter(processing.stale(cutoff), status="received"),
                )
            )
        for status, events in selections:
            for event_id in events.values_list("event_id", flat=True).iterator():
                replay(event_id, status)

        summary = ", ".join(
            OUTCOMES[outcome][1] % {"count": n} for outcome, n in sorted(counts.items())
        )
        self.stdout.write(self.style.SUCCESS(_("Replayed: %s") % (summary or _("nothing"))))
