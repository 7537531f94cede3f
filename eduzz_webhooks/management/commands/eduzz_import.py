"""``eduzz_import``: load an export or backup of events through the webhook's processing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext, pgettext

from ... import processing
from ...exceptions import InvalidEnvelope
from ...models import WebhookEvent
from ...payloads import Envelope, parse_envelope
from ..base import EduzzCommand

BOM = b"\xef\xbb\xbf"
# Entries listed by name in the summary, per kind; the rest are only counted.
MAX_LISTED = 100


class Entry(NamedTuple):
    where: str  # "line 3" or "[2]", for the summary
    body: bytes
    done: float  # how much of the file is read once this entry is, from 0 to 1


@dataclass
class Summary:
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("processed", "failed", "duplicate", "queued", "invalid"), 0
        )
    )
    failed: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        listed = {"failed": self.failed, "invalid": self.invalid}.get(outcome)
        if listed is not None and len(listed) < MAX_LISTED:
            listed.append(detail)


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
            "file",
            metavar="FILE",
            help=_("A JSON-lines file or a JSON array of Eduzz envelopes."),
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
        batch_size: int = options["batch_size"]
        if batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        if path.exists() and not path.is_file():
            # A directory, or a pipe: reading one could wait forever.
            raise CommandError(_("%s is not a regular file.") % path)
        summary = Summary()
        progress = Progress(self.stderr, enabled=options["verbosity"] > 0)
        try:
            with path.open("rb") as handle:
                for batch in _batches(self._entries(path, handle), batch_size):
                    self._import(batch, summary, progress)
        except processing.UNAVAILABLE as exc:
            progress.finish()
            self._report(path, summary)
            raise CommandError(
                _(
                    "The database is unavailable (%(error)s); the import stopped. Running it "
                    "again is safe: what was imported counts as duplicate. An event stored "
                    "but not processed when it stopped is finished by eduzz_replay --pending."
                )
                % {"error": type(exc).__name__}
            ) from exc
        except OSError as exc:  # opening or reading the file
            progress.finish()
            if progress.count:
                self._report(path, summary)
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror or exc}
            ) from exc
        progress.finish()
        self._report(path, summary)
        invalid = summary.counts["invalid"]
        if invalid:
            raise CommandError(
                ngettext(
                    "%(count)d entry of %(path)s is not an Eduzz event and was not imported.",
                    "%(count)d entries of %(path)s are not Eduzz events and were not imported.",
                    invalid,
                )
                % {"count": invalid, "path": path}
            )

    # -- reading -----------------------------------------------------------------------

    def _entries(self, path: Path, handle: IO[bytes]) -> Iterator[Entry]:
        """Tell JSON lines from a JSON array by the first character, and read it."""
        if handle.read(len(BOM)) != BOM:
            handle.seek(0)
        begin = handle.tell()
        while (char := handle.read(1)).isspace():
            pass
        handle.seek(begin)  # lines are numbered from the top, blank ones included
        if char == b"[":
            return _json_array(path, handle)
        if char == b"{":
            return _json_lines(path, handle)
        if not char:
            raise CommandError(_("%s is empty.") % path)
        raise CommandError(
            _("%s is neither JSON lines (one event per line) nor a JSON array of events.") % path
        )

    # -- importing ---------------------------------------------------------------------

    def _import(self, batch: list[Entry], summary: Summary, progress: Progress) -> None:
        parsed: list[tuple[Entry, Envelope | str]] = []
        for entry in batch:
            try:
                parsed.append((entry, parse_envelope(entry.body)))
            except InvalidEnvelope as exc:
                # The message, not the exception: its traceback would keep the
                # batch alive in a reference cycle.
                parsed.append((entry, str(exc)))
        # One query per batch for the events already stored. Failed ones are
        # left to processing.receive, which processes them again, as it does
        # for a re-delivery.
        ids = {e.event_id for _, e in parsed if isinstance(e, Envelope)}
        stored = set(
            WebhookEvent.objects.filter(event_id__in=ids)
            .exclude(status=WebhookEvent.Status.FAILED)
            .values_list("event_id", flat=True)
        )
        for entry, envelope in parsed:
            progress.update(entry.done)
            if isinstance(envelope, str):
                summary.add("invalid", f"{entry.where}: {envelope}")
            elif envelope.event_type == processing.PING:
                summary.add("ping")  # the webhook answers pings and stores nothing
            elif envelope.event_id in stored:
                summary.add("duplicate")
            else:
                self._receive(entry, envelope, summary)

    def _receive(self, entry: Entry, envelope: Envelope, summary: Summary) -> None:
        result = processing.receive(envelope)
        if result.outcome is processing.Outcome.FAILED and result.event is not None:
            summary.add(
                "failed",
                _("%(where)s (event %(id)s): %(reason)s")
                % {
                    "where": entry.where,
                    "id": envelope.event_id,
                    "reason": _reason(result.event.error),
                },
            )
        else:
            summary.add(result.outcome.value)

    # -- summary -----------------------------------------------------------------------

    def _report(self, path: Path, summary: Summary) -> None:
        counts = summary.counts
        # Their own context: heading a count, a label takes the plural in Portuguese.
        labels = {
            "processed": pgettext("import summary", "processed"),
            "failed": pgettext("import summary", "failed"),
            "duplicate": pgettext("import summary", "duplicate"),
            "queued": pgettext("import summary", "queued"),
            "invalid": pgettext("import summary", "invalid"),
            # Only inside a caller's transaction: the signals wait for its commit.
            "pending": pgettext("import summary", "pending (signals after the caller's commit)"),
            "ping": pgettext("import summary", "ping (ignored)"),
        }
        total = sum(counts.values())
        self.stdout.write(
            ngettext(
                "Imported %(path)s: %(count)d entry.",
                "Imported %(path)s: %(count)d entries.",
                total,
            )
            % {"path": path, "count": total}
        )
        for outcome, label in labels.items():
            if outcome in counts:
                self.stdout.write(f"  {label}: {counts[outcome]}")
        for title, listed, total in (
            (
                _("Failed events (stored; run eduzz_replay --failed once the cause is fixed):"),
                summary.failed,
                counts["failed"],
            ),
            (_("Invalid entries (not imported):"), summary.invalid, counts["invalid"]),
        ):
            if not listed:
                continue
            self.stdout.write(title)
            for line in listed:
                self.stdout.write(f"  {line}")
            if total > len(listed):
                self.stdout.write("  " + _("... and %d more.") % (total - len(listed)))
        style = self.style.WARNING if counts["failed"] or counts["invalid"] else self.style.SUCCESS
        self.stdout.write(style(_("Done.")))


def _reason(error: str) -> str:
    """The gist of an event's stored error, on one line."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last):" not in lines:
        return "; ".join(lines)
    # What names the culprit ("Receiver x.y raised:"), and the exception.
    head = [] if lines[0].startswith("Traceback") else [lines[0]]
    return " ".join([*head, lines[-1]])


def _json_lines(path: Path, handle: IO[bytes]) -> Iterator[Entry]:
    """One entry per non-blank line, read as it goes: memory stays bounded."""
    size = max(os.fstat(handle.fileno()).st_size, 1)
    position = handle.tell()  # after the BOM, if any
    first = True
    for number, line in enumerate(handle, 1):
        position += len(line)
        body = line.strip()
        if not body:
            continue
        if first:
            first = False
            _check_first_line(path, number, body)
        yield Entry(_("line %d") % number, body, position / size)


def _check_first_line(path: Path, number: int, body: bytes) -> None:
    # A pretty-printed object, or any other JSON, would make every line
    # "invalid": say once what the file is not.
    try:
        json.loads(body)
    except ValueError as exc:
        raise CommandError(
            _(
                "%(path)s is not JSON lines: line %(line)d is not a complete JSON object. "
                "Give one event per line, or a JSON array of events."
            )
            % {"path": path, "line": number}
        ) from exc


def _json_array(path: Path, handle: IO[bytes]) -> Iterator[Entry]:
    """Each element of the array; the file is read and checked whole, before any import."""
    try:
        items = json.loads(handle.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError(_("%s is not valid UTF-8.") % path) from exc
    except (ValueError, RecursionError) as exc:
        raise CommandError(
            _("%(path)s is not valid JSON: %(error)s") % {"path": path, "error": exc}
        ) from exc
    if not isinstance(items, list):
        raise CommandError(_("%s is not a JSON array.") % path)
    return _array_entries(items)


def _array_entries(items: list[Any]) -> Iterator[Entry]:
    total = max(len(items), 1)
    for index, item in enumerate(items):
        # ASCII escapes keep lone surrogates encodable; parse_envelope replaces
        # them, as it does for a webhook body.
        body = json.dumps(item, separators=(",", ":")).encode("ascii")
        yield Entry(f"[{index}]", body, (index + 1) / total)


def _batches(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _plain(text: str) -> str:
    # Django colours a terminal's stderr as errors; progress is not one.
    return text


class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, sparse lines otherwise."""

    WIDTH = 30
    INTERVAL = 0.1  # seconds between redraws on a terminal

    def __init__(self, out: OutputWrapper, *, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.tty = out.isatty()
        self.count = 0
        self.done = 0.0
        self._drawn_at = 0.0
        self._tenths = 0  # last tenth of the file reported as a line

    def update(self, done: float) -> None:
        self.count += 1
        self.done = min(done, 1.0)
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._drawn_at >= self.INTERVAL:
                self._drawn_at = now
                self.out.write("\r" + self._bar(), style_func=_plain, ending="")
                self.out.flush()
        elif int(self.done * 10) > self._tenths:
            self._tenths = int(self.done * 10)
            self.out.write(self._bar(), style_func=_plain)

    def finish(self) -> None:
        if not self.enabled or not self.count:
            return
        if self.tty:
            self.out.write("\r" + self._bar(), style_func=_plain)
        elif self._tenths < 10:
            self.out.write(self._bar(), style_func=_plain)
        self.out.flush()

    def _bar(self) -> str:
        filled = int(self.done * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return ngettext(
            "[%(bar)s] %(percent)3d%% %(count)d entry",
            "[%(bar)s] %(percent)3d%% %(count)d entries",
            self.count,
        ) % {
            "bar": bar,
            "percent": int(self.done * 100),
            "count": self.count,
        }
