"""The load test's settings: the bench project plus receivers that count every signal."""

from __future__ import annotations

import os

from .settings import *  # noqa: F403

BENCH_COUNT_SIGNALS = True
# Seconds the last receiver waits (BENCH_RECEIVER_PAUSE): with workers killed
# during the burst, kills then land after the signals, before the event's status.
BENCH_RECEIVER_PAUSE = float(os.environ.get("BENCH_RECEIVER_PAUSE") or 0)
