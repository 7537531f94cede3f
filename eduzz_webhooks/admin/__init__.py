"""Read-only admin: what Eduzz sent is never edited by hand.

Django's autodiscover imports this package; importing :mod:`.admin` registers
the ModelAdmins, which stay importable from here to subclass.
"""

from .admin import (
    CourseAdmin,
    FileDownloadAdmin,
    LearnerAdmin,
    LessonAdmin,
    ProducerAdmin,
    WebhookEventAdmin,
)

__all__ = [
    "CourseAdmin",
    "FileDownloadAdmin",
    "LearnerAdmin",
    "LessonAdmin",
    "ProducerAdmin",
    "WebhookEventAdmin",
]
