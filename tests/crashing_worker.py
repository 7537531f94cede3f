"""A web worker that dies in the middle of a delivery, for ``tests/test_faults.py``.

Run as ``python -m tests.crashing_worker MARKER PAYLOAD_JSON`` with
``EDUZZ_FAULTS_DB_NAME`` naming the test database pytest-django created (the
rest of the connection comes from ``tests.settings``, as in the test run). It
posts the payload to the webhook view through the test client, with a
``file_downloaded`` receiver that creates MARKER and then blocks: the test
kills this process with SIGKILL while the receiver runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings

BLOCK_SECONDS = 120  # far longer than the test waits before killing the worker


def main(marker: Path, payload: dict[str, Any]) -> int:
    settings.DATABASES["default"]["NAME"] = os.environ["EDUZZ_FAULTS_DB_NAME"]
    django.setup()

    from django.test import Client

    from eduzz_webhooks import signals
    from eduzz_webhooks.models import WebhookEvent
    from eduzz_webhooks.testing import post_event

    def block(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        partial = marker.with_suffix(".partial")
        partial.write_text(event.event_id)
        partial.replace(marker)  # atomic: the test never reads half a marker
        time.sleep(BLOCK_SECONDS)

    signals.file_downloaded.connect(block, weak=False)
    response = post_event(Client(), payload)
    # Reached only if nobody killed the worker: tell the test what happened.
    print(response.status_code, response.content.decode(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.exit(main(Path(sys.argv[1]), json.loads(sys.argv[2])))
