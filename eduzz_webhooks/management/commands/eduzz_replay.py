from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from ... import processing
from ...conf import LONGEST, conf
from ...models import WebhookEvent
from ...processing import Outcome
from ..base import EduzzCommand, error_gist


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
        longest = LONGEST.total_seconds() // 60
        if older_than is not None and not 0 <= older_than <= longest:  # NaN is neither
            raise CommandError(
                _("--older-than must be a number of minutes from 0 to %d.") % longest
            )
        stale_after = (
            conf.ATTEMPT_TIMEOUT if older_than is None else dt.timedelta(minutes=older_than)
        )
        statuses = dict(
            WebhookEvent.objects.filter(event_id__in=ids).values_list("event_id", "status")
        )
        if missing := [i for i in ids if i not in statuses]:
            raise CommandError(_("Unknown event ids: %s") % ", ".join(missing))
        # Each selection is read once the previous one is replayed.
        selections: list[Iterable[tuple[str, str]]] = [[(i, statuses[i]) for i in ids]]
        events = WebhookEvent.objects.values_list("event_id", "status")
        if options["failed"]:
            selections.append(events.filter(status=WebhookEvent.Status.FAILED).iterator())
        if options["pending"]:
            stale = processing.stale(timezone.now() - stale_after)
            selections.append(events.filter(stale, status=WebhookEvent.Status.RECEIVED).iterator())
        counts: Counter[Outcome] = Counter()
        for event_id, status in itertools.chain(*selections):
            event = processing.claim(event_id, status, stale_after=stale_after)
            outcome = processing.process(event).outcome if event else Outcome.SKIPPED
            counts[outcome] += 1
            gist = f" ({error_gist(event.error)})" if event and outcome == Outcome.FAILED else ""
            self.stdout.write(f"{event_id}: {outcome.label}{gist}")
        total = counts.total()
        self.stdout.write(
            self.style.SUCCESS(
                ngettext("Replayed %(count)d event.", "Replayed %(count)d events.", total)
                % {"count": total}
            )
        )
        for outcome in Outcome:
            if counts[outcome]:
                self.stdout.write(f"  {outcome.label}: {counts[outcome]}")
