from __future__ import annotations

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _


class EduzzWebhooksConfig(AppConfig):
    name = "eduzz_webhooks"
    verbose_name = _("Eduzz webhooks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import conf

        try:
            background = conf.PROCESS_IN_BACKGROUND
        except ImproperlyConfigured:
            return  # the system checks report it
        if background:
            register_task(conf.TASK_BACKEND)


def register_task(alias: str) -> None:
    """Show the task to its backend in every process, workers included.

    A backend that keeps a registry of its own (django-tasks-celery) learns a
    task when it validates it; a worker, which enqueues nothing, would
    otherwise discard the task as unknown. A backend that can't be had is
    left to the system checks (E004, E005).
    """
    try:
        from .tasks import process_event, task_backends
    except ImportError:
        return
    if alias in task_backends.settings:
        process_event.using(backend=alias)
