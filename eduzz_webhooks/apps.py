from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EduzzWebhooksConfig(AppConfig):
    name = "eduzz_webhooks"
    verbose_name = _("Eduzz webhooks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
