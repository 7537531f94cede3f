from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from ...conf import conf
from ...privacy import prune_payloads
from ..base import EduzzCommand

SETTING = "EDUZZ_WEBHOOKS['PAYLOAD_RETENTION_DAYS']"


class Command(EduzzCommand):
    help = gettext_noop(
        "Anonymise the stored payloads of events received more than N days ago: each keeps only "
        "its id, event, sentDate and a 'pruned' marker, so deduplication, the admin and counts "
        "keep working; downloads and other records are kept. Only processed events are pruned: "
        "a failed or not yet processed event keeps its whole payload, which a replay needs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            metavar="N",
            help=_("Prune events received more than N days ago. Default: the %(setting)s setting.")
            % {"setting": SETTING},
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Only count the events that would be pruned; change nothing."),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            metavar="SIZE",
            help=_("Events rewritten per query and transaction (default: 1000)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is None:
            try:
                days = conf.PAYLOAD_RETENTION_DAYS
            except ImproperlyConfigured as exc:
                raise CommandError(
                    _("%(setting)s must be a whole number of days, or None.") % {"setting": SETTING}
                ) from exc
        if days is None:
            raise CommandError(
                _("Give --days N, or set %(setting)s (it is None: payloads are kept forever).")
                % {"setting": SETTING}
            )
        try:
            report = prune_payloads(
                days, dry_run=options["dry_run"], batch_size=options["batch_size"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        values = {
            "count": report.pruned,
            "cutoff": report.cutoff.isoformat(timespec="seconds"),
            "kept": report.kept_unprocessed,
        }
        if report.dry_run:
            message = _(
                "Dry run: %(count)d processed event(s) received before %(cutoff)s would be "
                "pruned; nothing was changed."
            )
        else:
            message = _(
                "Pruned the payloads of %(count)d processed event(s) received before %(cutoff)s."
            )
        self.stdout.write(self.style.SUCCESS(message % values))
        if report.kept_unprocessed:
            self.stdout.write(
                _(
                    "%(kept)d older event(s) are not processed (failed or pending) and keep their "
                    "payload for a replay."
                )
                % values
            )
