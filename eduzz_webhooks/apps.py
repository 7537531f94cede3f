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
            try:
                from .tasks import register
            except ImportError:
                return  # no Tasks framework: E004 says so
            register(conf.TASK_BACKEND)
