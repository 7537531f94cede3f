"""What the app's management commands share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _


class EduzzCommand(BaseCommand):
    """A command whose ``help`` (marked with ``gettext_noop``) is shown in the active language.

    argparse needs a plain string, so ``help`` can't be a lazy translation;
    it is translated here, when the command runs.
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = _(self.help)
        return parser
