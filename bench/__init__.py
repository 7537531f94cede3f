"""Benchmark and launch-burst load test of django-eduzz-webhooks (not part of the package).

A small Django project (settings, urls, views and the ``bench`` app) served by
gunicorn, and the tools that drive it: ``harness`` (server and load generator),
``run`` (the benchmark) and ``loadtest`` (the launch burst). See README.md.
"""

from __future__ import annotations

# The key the bench project accepts and the load generator signs with.
SECRET = "bench-secret-0123456789abcdef"
