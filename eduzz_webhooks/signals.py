"""The signals a host project connects to. This module is a public contract.

Both are sent with ``send_robust`` once the event's records are committed: a
receiver that raises does not stop the others, and it marks the event
``failed`` with the error stored, so that ``eduzz_replay`` can run it again.
Receivers must accept ``**kwargs`` and should be idempotent (a replay sends
again): ``event.event_id`` is a stable key.
"""

from __future__ import annotations

from django.dispatch import Signal

# A learner downloaded a lesson's file (``nutror.file_downloaded``).
# sender: FileDownload (the model class)
# kwargs: download (FileDownload, with learner, course, lesson and producer
#         loaded), event (WebhookEvent)
file_downloaded = Signal()

# Any authentic event except ``ping``, of any type, modelled or not; sent after
# the type's own signal.
# sender: WebhookEvent (the model class)
# kwargs: event (WebhookEvent; ``event.payload`` is the parsed envelope)
event_received = Signal()
