"""Settings for the test suite. ``EDUZZ_TEST_DATABASE_URL`` picks the database.

Unset: SQLite. ``postgres://postgres@127.0.0.1:5432/eduzz`` (say): PostgreSQL.
``mysql://root@127.0.0.1:3306/eduzz``: MariaDB (or MySQL).
"""

from __future__ import annotations

import copy
import os

import dj_database_url
import django

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["*"]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("EDUZZ_TEST_DATABASE_URL", "sqlite:///:memory:"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that transactional tests see one database from threads.
    DATABASES["default"]["NAME"] = os.environ.get("EDUZZ_TEST_SQLITE", "eduzz-tests.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"]["OPTIONS"] = {
        "charset": "utf8mb4",  # the whole of Unicode; MariaDB's "utf8" stops at 3 bytes
        "isolation_level": "read committed",  # Django's default, which get_or_create needs
    }
    # Compare text byte for byte, as PostgreSQL and SQLite do: with MariaDB's default
    # (case- and accent-insensitive, trailing spaces ignored) event ids "abc" and "ABC"
    # would be one event. What docs/installation.rst recommends for production.
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_nopad_bin"}
# The same database under a second alias, for tests of a project whose DATABASE_ROUTERS give the
# app a database of its own: another connection, so transactions apart from the default's.
DATABASES["events"] = copy.deepcopy(DATABASES["default"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "eduzz_webhooks",
    "tests",
    # For background mode (PROCESS_IN_BACKGROUND): django.tasks is built into Django 6.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "django_tasks_db",
]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

EDUZZ_WEBHOOKS = {"SECRETS": ["test-secret-0123456789abcdef", "rotated-secret-fedcba9876543210"]}
