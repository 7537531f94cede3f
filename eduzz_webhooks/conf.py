"""The app's settings, read lazily from ``settings.EDUZZ_WEBHOOKS``.

Every accessor reads Django's settings at call time, so ``override_settings``
works in tests. The defaults are documented in ``docs/settings.rst``.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "SECRETS": [],
    "VERIFY_SIGNATURE": True,
    "MAX_BODY_SIZE": 256 * 1024,
    "NAIVE_DATETIME_TIMEZONE": "America/Sao_Paulo",
    "MAX_EVENT_AGE": None,
    "PROCESS_IN_BACKGROUND": False,
    "TASK_BACKEND": "default",
    "PAYLOAD_RETENTION_DAYS": None,
}


def _get(name: str) -> Any:
    user = getattr(settings, "EDUZZ_WEBHOOKS", None) or {}
    return user.get(name, DEFAULTS[name])


class Settings:
    """Typed, lazily-read view of ``settings.EDUZZ_WEBHOOKS``."""

    @property
    def SECRETS(self) -> list[str]:
        value = _get("SECRETS")
        if isinstance(value, str):
            return [value]
        return list(value)

    @property
    def VERIFY_SIGNATURE(self) -> bool:
        return bool(_get("VERIFY_SIGNATURE"))

    @property
    def MAX_BODY_SIZE(self) -> int:
        return int(_get("MAX_BODY_SIZE"))

    @property
    def NAIVE_DATETIME_TIMEZONE(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(_get("NAIVE_DATETIME_TIMEZONE"))

    @property
    def MAX_EVENT_AGE(self) -> float | None:
        value = _get("MAX_EVENT_AGE")
        return None if value is None else float(value)

    @property
    def PROCESS_IN_BACKGROUND(self) -> bool:
        return bool(_get("PROCESS_IN_BACKGROUND"))

    @property
    def TASK_BACKEND(self) -> str:
        return str(_get("TASK_BACKEND"))

    @property
    def PAYLOAD_RETENTION_DAYS(self) -> int | None:
        value = _get("PAYLOAD_RETENTION_DAYS")
        return None if value is None else int(value)


conf = Settings()
