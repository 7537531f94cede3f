from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from ... import processing
from ...models import WebhookEvent


class Command(BaseCommand):
    help = (
        "Run processing and signals again for stored Eduzz events: the given ids, every "
        "failed event, or events left unprocessed by a crash."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="Eduzz event ids.")
        parser.add_argument(
            "--failed", action="store_true", help="Replay every event whose status is failed."
        )
        parser.add_argument(
            "--pending",
            action="store_true",
            help="Replay events still 'received' after --older-than minutes (a crashed worker).",
        )
        parser.add_argument(
            "--older-than",
            type=float,
            default=10.0,
            metavar="MINUTES",
            help="With --pending: how old an unprocessed event must be (default: 10).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["event_ids"]
        if not (ids or options["failed"] or options["pending"]):
            raise CommandError(_("Give event ids, --failed or --pending."))
        counts: dict[str, int] = {}

        def count(result: processing.Result | None, event_id: str) -> None:
            outcome = result.outcome.value if result else "skipped"
            counts[outcome] = counts.get(outcome, 0) + 1
            self.stdout.write(f"{event_id}: {outcome}")

        if ids:
            found = {e.event_id: e for e in WebhookEvent.objects.filter(event_id__in=ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise CommandError(_("Unknown event ids: %s") % ", ".join(missing))
            for event_id in ids:
                count(processing.process(found[event_id]), event_id)
        for status, wanted, cutoff in (
            (WebhookEvent.Status.FAILED, options["failed"], None),
            (
                WebhookEvent.Status.RECEIVED,
                options["pending"],
                timezone.now() - dt.timedelta(minutes=options["older_than"]),
            ),
        ):
            if not wanted:
                continue
            pending = WebhookEvent.objects.filter(status=status)
            if cutoff is not None:
                pending = pending.filter(received_at__lt=cutoff)
            for event_id in pending.values_list("event_id", flat=True).iterator():
                event = processing.claim(event_id, status)
                count(processing.process(event) if event else None, event_id)

        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        self.stdout.write(self.style.SUCCESS(_("Replayed: %s") % (summary or "nothing")))
