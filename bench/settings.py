"""Settings of the bench project, served by gunicorn during the benchmark and the load test.

Environment: ``BENCH_DATABASE_URL`` (required; ``postgres://...`` or
``sqlite:////path``), ``BENCH_BACKGROUND=1`` for the app's task mode,
``BENCH_TASK_ENGINE`` for that mode's backend (``db``, the default:
django-tasks-db and its ``db_worker``; ``celery``: django-tasks-celery and
Celery workers, broker ``BENCH_CELERY_BROKER_URL``, by default Redis database
5 on 127.0.0.1), ``BENCH_ATTEMPT_TIMEOUT`` for the app's ``ATTEMPT_TIMEOUT``
(seconds), ``BENCH_SERVER_SIDE_BINDING=1`` for Django's ``server_side_binding``
on PostgreSQL, and ``BENCH_RUN_DIR``, a directory where each worker writes
its database statement counts when it exits (the counting middleware is on
only then).
"""

from __future__ import annotations

import os

import dj_database_url
import django

from . import SECRET

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "bench.urls"
WSGI_APPLICATION = "bench.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

try:
    _url = os.environ["BENCH_DATABASE_URL"]
except KeyError:
    raise RuntimeError("Set BENCH_DATABASE_URL (postgres://... or sqlite:////path).") from None
# Persistent connections, as a production deployment has them.
DATABASES = {"default": dj_database_url.parse(_url, conn_max_age=None)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Several gunicorn processes write: WAL lets readers go on, IMMEDIATE
        # takes the write lock up front instead of failing to upgrade to it.
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
    }
elif os.environ.get("BENCH_SERVER_SIDE_BINDING") == "1":  # PostgreSQL
    # Django's own option (psycopg 3), which a host may set: see docs/performance.md.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "eduzz_webhooks",
    "bench",
    # Task mode: django.tasks is built into Django 6, a backport before.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "django_tasks_db",
]

TASK_ENGINE = os.environ.get("BENCH_TASK_ENGINE", "db")
if TASK_ENGINE == "db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif TASK_ENGINE == "celery":
    TASKS = {
        "default": {
            "BACKEND": "django_tasks_celery.CeleryBackend",
            "OPTIONS": {"CELERY_APP": "bench.celery.app"},
        }
    }
    CELERY_BROKER_URL = os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/5")
    # A queue of the bench's own, which the load test's workers purge when they start.
    CELERY_TASK_DEFAULT_QUEUE = "eduzz-bench"
    # No result backend: nothing reads a task's result (the event's status is the record).
    SILENCED_SYSTEM_CHECKS = ["django_tasks_celery.W001", "django_tasks_celery.W002"]
else:
    raise RuntimeError(f"BENCH_TASK_ENGINE is {TASK_ENGINE!r}; use db or celery.")

MIDDLEWARE = [
    *(["bench.counting.CountingMiddleware"] if os.environ.get("BENCH_RUN_DIR") else []),
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

EDUZZ_WEBHOOKS = {
    "SECRETS": [SECRET],
    "PROCESS_IN_BACKGROUND": os.environ.get("BENCH_BACKGROUND") == "1",
}
# The load test with killed workers waits this out before it re-sends every event.
if os.environ.get("BENCH_ATTEMPT_TIMEOUT"):
    EDUZZ_WEBHOOKS["ATTEMPT_TIMEOUT"] = float(os.environ["BENCH_ATTEMPT_TIMEOUT"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
