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


def error_gist(error: str) -> str:
    """The gist of an event's stored error, on one line."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last):" not in lines:
        return "; ".join(lines)
    # What names the culprit ("Receiver x.y raised:"), and the exception.
    head = [] if lines[0].startswith("Traceback") else [lines[0]]
    return " ".join([*head, lines[-1]])
