"""``eduzz_import``: load an export or backup of events through the webhook's processing."""

from __future__ import annotations

import codecs
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext, pgettext
from tqdm import tqdm  # type: ignore[import-untyped]

from ... import processing
from ...exceptions import InvalidEnvelope
from ...models import WebhookEvent
from ...payloads import Envelope, parse_envelope
from ...processing import Outcome
from ...views import receive
from ..base import EduzzCommand, error_gist

# The import's own kinds of entry, beside processing's outcomes: not an Eduzz
# envelope, and a ping (the webhook answers it and stores nothing).
INVALID, PING = "invalid", "ping"
# Counted in the summary even when there are none.
ALWAYS_COUNTED = (Outcome.PROCESSED, Outcome.FAILED, Outcome.DUPLICATE, Outcome.QUEUED, INVALID)
# Entries listed by name in the summary, per kind; the rest are only counted.
MAX_LISTED = 100


class Entry(NamedTuple):
    where: str  # "line 3" or "[2]", for the summary
    body: bytes
    read: int  # the progress once this entry is read: bytes, or entries of an array


class Command(EduzzCommand):
    help = gettext_noop(
        "Import Eduzz events from a file: JSON lines (one event per line) or a JSON array "
        "of events. Each event goes through the webhook's processing: stored once, "
        "deduplicated by its id, turned into records and announced by the signals. "
        "Importing a file again creates nothing new; its failed events are processed "
        "again, as a re-delivery from Eduzz would. Exits with an error when some entries "
        "are not Eduzz events (they are listed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", metavar="FILE", help=_("A JSON-lines file or a JSON array of Eduzz envelopes.")
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            metavar="N",
            help=_("Events read and checked against the stored ones at a time (default: 500)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if options["batch_size"] < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        if path.exists() and not path.is_file():
            # A directory, or a pipe: reading one could wait forever.
            raise CommandError(_("%s is not a regular file.") % path)
        self.counts: Counter[str] = Counter()
        self.listed: dict[str, list[str]] = {Outcome.FAILED: [], INVALID: []}
        try:
            with path.open("rb") as handle:
                entries, unit = _read(path, handle)
                # On the raw stream: Django's wrapper would end each redraw with a
                # newline and colour it as an error. None: off when not a terminal.
                disable = None if options["verbosity"] else True
                with tqdm(file=self.stderr._out, disable=disable, **unit) as progress:
                    while batch := list(itertools.islice(entries, options["batch_size"])):
                        self._import(batch, progress)
        except processing.UNAVAILABLE as exc:
            self._report(path)
            raise CommandError(
                _(
                    "The database is unavailable (%(error)s); the import stopped. Running it "
                    "again is safe: what was imported counts as duplicate. An event stored "
                    "but not processed when it stopped is finished by eduzz_replay --pending."
                )
                % {"error": type(exc).__name__}
            ) from exc
        except OSError as exc:  # opening or reading the file
            if self.counts:
                self._report(path)
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror or exc}
            ) from exc
        self._report(path)
        if invalid := self.counts[INVALID]:
            raise CommandError(
                ngettext(
                    "%(count)d entry of %(path)s is not an Eduzz event and was not imported.",
                    "%(count)d entries of %(path)s are not Eduzz events and were not imported.",
                    invalid,
                )
                % {"count": invalid, "path": path}
            )

    def _import(self, batch: list[Entry], progress: tqdm) -> None:
        envelopes = [_parse(entry.body) for entry in batch]
        # One query per batch for the events already stored; failed ones are
        # left to processing.receive, which processes them again.
        stored = set(
            WebhookEvent.objects.filter(
                event_id__in={e.event_id for e in envelopes if isinstance(e, Envelope)}
            )
            .exclude(status=WebhookEvent.Status.FAILED)
            .values_list("event_id", flat=True)
        )
        for entry, envelope in zip(batch, envelopes, strict=True):
            progress.update(entry.read - progress.n)
            if isinstance(envelope, str):
                self._count(INVALID, f"{entry.where}: {envelope}")
            elif envelope.event_type == processing.PING:
                self._count(PING)
            elif envelope.event_id in stored:
                self._count(Outcome.DUPLICATE)
            else:
                result = receive(envelope)
                detail = ""
                if result.outcome is Outcome.FAILED and result.event:
                    detail = _("%(where)s (event %(id)s): %(reason)s") % {
                        "where": entry.where,
                        "id": envelope.event_id,
                        "reason": error_gist(result.event.error),
                    }
                self._count(result.outcome, detail)

    def _count(self, kind: str, detail: str = "") -> None:
        self.counts[kind] += 1
        listed = self.listed.get(kind)
        if listed is not None and len(listed) < MAX_LISTED:
            listed.append(detail)

    def _report(self, path: Path) -> None:
        counts = self.counts
        total = counts.total()
        self.stdout.write(
            ngettext(
                "Imported %(path)s: %(count)d entry.",
                "Imported %(path)s: %(count)d entries.",
                total,
            )
            % {"path": path, "count": total}
        )
        labels: dict[str, str] = {
            **{outcome: str(outcome.label) for outcome in Outcome},
            INVALID: pgettext("import summary", "invalid"),
            PING: pgettext("import summary", "ping (ignored)"),
        }
        for kind, label in labels.items():
            if counts[kind] or kind in ALWAYS_COUNTED:
                self.stdout.write(f"  {label}: {counts[kind]}")
        titles = {
            Outcome.FAILED: _(
                "Failed events (stored; run eduzz_replay --failed once the cause is fixed):"
            ),
            INVALID: _("Invalid entries (not imported):"),
        }
        for kind, title in titles.items():
            if listed := self.listed[kind]:
                self.stdout.write(title)
                for line in listed:
                    self.stdout.write(f"  {line}")
                if counts[kind] > len(listed):
                    self.stdout.write("  " + _("... and %d more.") % (counts[kind] - len(listed)))
        trouble = counts[Outcome.FAILED] or counts[INVALID]
        self.stdout.write((self.style.WARNING if trouble else self.style.SUCCESS)(_("Done.")))


def _parse(body: bytes) -> Envelope | str:
    """The entry's envelope, or why it is not one."""
    try:
        return parse_envelope(body)
    except InvalidEnvelope as exc:
        # The message, not the exception: its traceback would keep the batch
        # alive in a reference cycle.
        return str(exc)


def _read(path: Path, handle: IO[bytes]) -> tuple[Iterator[Entry], dict[str, Any]]:
    """The file's entries and tqdm's total and unit for their ``read``.

    The first non-blank line tells JSON lines from a JSON array. Raises
    ``CommandError`` for a file that is neither, before any entry is read.
    """
    if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        handle.seek(0)
    start = handle.tell()
    first = next(_json_lines(handle), None)
    if first is None:
        raise CommandError(_("%s is empty.") % path)
    handle.seek(start)
    if first.body.startswith(b"["):
        return _json_array(path, handle)
    if not first.body.startswith(b"{"):
        raise CommandError(
            _("%s is neither JSON lines (one event per line) nor a JSON array of events.") % path
        )
    # A pretty-printed object, or any other JSON, would make every line
    # invalid: say once what the file is not.
    try:
        json.loads(first.body)
    except (ValueError, RecursionError) as exc:
        raise CommandError(
            _(
                "%(path)s is not JSON lines: %(where)s is not a complete JSON object. "
                "Give one event per line, or a JSON array of events."
            )
            % {"path": path, "where": first.where}
        ) from exc
    size = os.fstat(handle.fileno()).st_size
    return _json_lines(handle), {
        "total": size,
        "unit": "B",
        "unit_scale": True,
        "unit_divisor": 1024,
    }


def _json_lines(handle: IO[bytes]) -> Iterator[Entry]:
    """One entry per non-blank line, read as it goes: memory stays bounded."""
    position = handle.tell()
    for number, line in enumerate(handle, 1):
        position += len(line)
        if body := line.strip():
            yield Entry(_("line %d") % number, body, position)


def _json_array(path: Path, handle: IO[bytes]) -> tuple[Iterator[Entry], dict[str, Any]]:
    """Each element of the array; the file is read and checked whole, before any import."""
    try:
        items: list[Any] = json.loads(handle.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError(_("%s is not valid UTF-8.") % path) from exc
    except (ValueError, RecursionError) as exc:
        raise CommandError(
            _("%(path)s is not valid JSON: %(error)s") % {"path": path, "error": exc}
        ) from exc
    # ASCII escapes keep lone surrogates encodable; parse_envelope replaces
    # them, as it does for a webhook body.
    entries = (
        Entry(f"[{index}]", json.dumps(item, separators=(",", ":")).encode("ascii"), index + 1)
        for index, item in enumerate(items)
    )
    return entries, {"total": len(items), "unit": " " + _("entries")}
