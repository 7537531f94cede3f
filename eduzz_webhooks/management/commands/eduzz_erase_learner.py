from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from ...privacy import erase_learners, normalize_email
from ..base import EduzzCommand


class Command(EduzzCommand):
    help = gettext_noop(
        "Erase the personal data of learners (LGPD): their learner (and producer) rows are "
        "anonymised and keep their downloads, and every stored payload that mentions them is "
        "scrubbed. Counts stay; nothing can be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "emails", nargs="+", metavar="EMAIL", help=_("E-mail addresses, any case.")
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help=_("Erase without asking for confirmation."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        emails: list[str] = options["emails"]
        try:
            for email in emails:
                normalize_email(email)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["interactive"]:
            yes = _("yes")
            question = _(
                "This erases the personal data of %(emails)s for good. "
                "Type '%(yes)s' to continue, or '%(no)s' to cancel: "
            ) % {"emails": ", ".join(emails), "yes": yes, "no": _("no")}
            try:
                answer = input(question)
            except EOFError as exc:
                raise CommandError(
                    _("No answer to the confirmation; pass --no-input to erase without it.")
                ) from exc
            # The English word is understood too, whatever the language of the question.
            if answer.strip().lower() not in {"yes", yes.lower()}:
                self.stdout.write(_("Erasure cancelled: nothing was changed."))
                return
        for report in erase_learners(emails):
            style = self.style.SUCCESS if report.found else self.style.WARNING
            self.stdout.write(style(str(report)))
