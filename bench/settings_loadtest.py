"""The load test's settings: the bench project plus receivers that count every signal."""

from __future__ import annotations

from .settings import *  # noqa: F403

BENCH_COUNT_SIGNALS = True
