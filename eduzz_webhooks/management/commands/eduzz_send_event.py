from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from ...conf import conf
from ...samples import SAMPLE_EVENTS, encode, format_datetime, sample_payload
from ...signature import sign
from ..base import EduzzCommand

# The characters of the server's answer printed; the app's own answers are far shorter.
MAX_SHOWN = 1000


class Command(EduzzCommand):
    help = gettext_noop(
        "POST a correctly signed Eduzz event (a documented sample, or a JSON file) to a "
        "running server, and print the answer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "event",
            nargs="?",
            default="nutror.file_downloaded",
            metavar="EVENT_TYPE|FILE",
            help=_(
                "A sample's event type (%(samples)s), or a JSON file with an envelope. "
                "Default: nutror.file_downloaded."
            )
            % {"samples": ", ".join(SAMPLE_EVENTS)},
        )
        parser.add_argument(
            "--url",
            help=_(
                "The webhook's full URL. Default: http://127.0.0.1:8000 and the "
                "eduzz_webhooks:webhook route."
            ),
        )
        parser.add_argument(
            "--secret",
            help=_("Sign with this key instead of the first of EDUZZ_WEBHOOKS['SECRETS']."),
        )
        parser.add_argument(
            "--keep-id",
            action="store_true",
            help=_("Send the id as it is (to test duplicates) instead of a fresh one."),
        )
        parser.add_argument(
            "--keep-dates",
            action="store_true",
            help=_(
                "Send a sample with its documented dates instead of dating it now "
                "(sentDate and createdAt)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        event = options["event"]
        payload = sample_payload(event, fresh_id=False) if event in SAMPLE_EVENTS else _read(event)
        if not options["keep_id"]:
            payload["id"] = uuid.uuid4().hex
        if event in SAMPLE_EVENTS and not options["keep_dates"]:
            # Dated now, so it shows in the admin's recent figures.
            now = timezone.now()
            payload["sentDate"] = format_datetime(now, "utc_ms")
            if "createdAt" in payload["data"]:
                payload["data"]["createdAt"] = format_datetime(now)
        secret = options["secret"] or next(iter(conf.SECRETS), None)
        if not secret:
            raise CommandError(_("No key: set EDUZZ_WEBHOOKS['SECRETS'] or pass --secret."))
        url = options["url"] or "http://127.0.0.1:8000" + reverse("eduzz_webhooks:webhook")
        body = encode(payload)
        request = urllib.request.Request(  # noqa: S310 - the user's own URL
            url,
            data=body,
            method="POST",
            # Asked for JSON, Django's error pages come as text, not HTML.
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "x-signature": sign(secret, body),
            },
        )
        try:
            with urllib.request.build_opener(_Unredirected).open(request, timeout=30) as response:
                status, answer, location = response.status, response.read(), None
        except urllib.error.HTTPError as exc:
            status, answer, location = exc.code, exc.read(), exc.headers.get("Location")
        except OSError as exc:  # URLError among them
            raise CommandError(
                _("Could not reach %(url)s: %(error)s") % {"url": url, "error": exc}
            ) from exc
        ok = 200 <= status < 300
        # A file's envelope may lack them: the server's answer says what it made of that.
        self.stdout.write(f"{payload.get('event', '-')} {payload.get('id', '-')} -> {url}")
        style = self.style.SUCCESS if ok else self.style.ERROR
        text = answer.decode("utf-8", "replace")
        if len(text) > MAX_SHOWN:  # an error page: its start says what went wrong
            text = text[:MAX_SHOWN] + "\n" + _("... (%d bytes in all)") % len(answer)
        self.stdout.write(style(f"{status} {text}"))
        if location:
            self.stdout.write(style(f"Location: {location}"))
        if not ok:
            raise CommandError(_("The server answered %d.") % status, returncode=2)


class _Unredirected(urllib.request.HTTPRedirectHandler):
    """A redirect is the answer: urllib would follow it with a GET, which no webhook takes."""

    def redirect_request(self, *args: Any) -> None:
        return None


def _read(name: str) -> dict[str, Any]:
    path = Path(name)
    if not path.is_file():
        raise CommandError(
            _("%(event)s is neither a sample (%(samples)s) nor a file.")
            % {"event": name, "samples": ", ".join(SAMPLE_EVENTS)}
        )
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (ValueError, RecursionError, OSError) as exc:
        raise CommandError(
            _("%(path)s is not a JSON file: %(error)s") % {"path": path, "error": exc}
        ) from exc
    if not isinstance(payload, dict):
        raise CommandError(_("%s must hold a JSON object (an Eduzz envelope).") % path)
    return payload
