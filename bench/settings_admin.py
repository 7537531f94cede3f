"""The bench project with the admin, for ``bench.admin_pages``.

Days in São Paulo time, as a Brazilian site counts them: the insight page
converts every instant it groups.
"""

from __future__ import annotations

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, MIDDLEWARE

ALLOWED_HOSTS = ["testserver"]
TIME_ZONE = "America/Sao_Paulo"
ROOT_URLCONF = "bench.urls_admin"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *INSTALLED_APPS,
]
MIDDLEWARE = [
    *MIDDLEWARE,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
STATIC_URL = "static/"
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
