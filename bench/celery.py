"""The bench project's Celery app: background mode with ``BENCH_TASK_ENGINE=celery``.

Configured from Django's settings (the ``CELERY_*`` ones in ``bench.settings``).
The web processes enqueue through django-tasks-celery's backend, which sends to
this app; ``celery -A bench.celery worker`` runs the tasks, having imported
``eduzz_webhooks.tasks`` through ``autodiscover_tasks``, as any Django project's
Celery app does. With ``BENCH_READY_DIR`` set, each worker touches a file there
once it consumes its queue: the load test waits for them before its burst.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

app = Celery("bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _announce_ready(sender: Any, **kwargs: Any) -> None:
    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:
        (Path(ready_dir) / f"ready-{sender.hostname}").touch()
