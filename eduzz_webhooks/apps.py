from __future__ import annotations

import contextlib

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
            # Declaring the task shows it to its backend (see tasks._declared_on).
            with contextlib.suppress(ImportError):  # no Tasks framework: E004 says so
                from . import tasks  # noqa: F401
