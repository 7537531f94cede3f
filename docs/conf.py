"""Sphinx configuration of the django-eduzz-webhooks documentation.

Build: ``scripts/docs`` (``python -m sphinx -W --keep-going -n -b html docs docs/_build/html``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.db import models
from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the app's modules, which need configured settings and a
# populated app registry. The docs never touch a database.
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "eduzz_webhooks",
        ],
        USE_TZ=True,
    )
django.setup()

import eduzz_webhooks  # noqa: E402  (after django.setup())

project = "django-eduzz-webhooks"
author = "django-eduzz-webhooks contributors"
copyright = f"2026, {author}"
release = eduzz_webhooks.__version__
version = release
language = "en"

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

nitpicky = True
# No intersphinx (the build must work offline), so references to the standard
# library and Django in autodoc signatures cannot resolve; these are all of them.
nitpick_ignore = [
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "django.test.client.Client"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

myst_heading_anchors = 3

html_theme = "furo"
html_title = f"django-eduzz-webhooks {release}"


def hide_model_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Show ``class WebhookEvent``, not the ``(*args, **kwargs)`` every model takes."""
    if what == "class" and isinstance(obj, type) and issubclass(obj, models.Model):
        return "", return_annotation
    return None


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", hide_model_signature)
