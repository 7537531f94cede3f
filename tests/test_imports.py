"""The app loads in a bare project: no task backend, nothing that patches Django's types."""

from __future__ import annotations

import subprocess
import sys

BARE_PROJECT = """
import sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.messages",
        "django.contrib.sessions",
        "eduzz_webhooks",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
django.setup()
from eduzz_webhooks import admin, processing, urls, views  # noqa: F401

# django-tasks patches Django's classes to be subscriptable (django-stubs-ext):
# code that only works with that patch would break projects without it.
assert "django_stubs_ext" not in sys.modules, "django_stubs_ext was imported"
"""


def test_the_app_loads_without_django_tasks_or_type_patches():
    done = subprocess.run(
        [sys.executable, "-c", BARE_PROJECT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
