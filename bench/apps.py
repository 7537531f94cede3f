from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class BenchConfig(AppConfig):
    name = "bench"
    verbose_name = "Benchmark"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if getattr(settings, "BENCH_COUNT_SIGNALS", False):
            from . import receivers

            receivers.connect()
