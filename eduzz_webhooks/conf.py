"""The app's settings, read from ``settings.EDUZZ_WEBHOOKS`` when asked for.

Each key of ``DEFAULTS`` has an accessor of its name, which reads Django's settings at call
time, so ``override_settings`` works, and raises ``ImproperlyConfigured`` for a value it
cannot use; the system checks call them all. Defaults: ``docs/settings.rst``.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "SECRETS": [],
    "VERIFY_SIGNATURE": True,
    "MAX_BODY_SIZE": 256 * 1024,
    "NAIVE_DATETIME_TIMEZONE": "America/Sao_Paulo",
    "MAX_EVENT_AGE": None,
    "PROCESS_IN_BACKGROUND": False,
    "TASK_BACKEND": "default",
    "PAYLOAD_RETENTION_DAYS": None,
    "ATTEMPT_TIMEOUT": 300,
}

# The longest span a duration setting may give, counted back from now: 1000 years, so that
# the date that long ago always exists.
LONGEST = dt.timedelta(days=365_000)


class Settings:
    """Typed view of ``settings.EDUZZ_WEBHOOKS``."""

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "EDUZZ_WEBHOOKS", None) or {}
        if not isinstance(value, dict):
            raise ImproperlyConfigured("The EDUZZ_WEBHOOKS setting must be a dict.")
        return value

    def _get(self, name: str) -> Any:
        return self.user_settings.get(name, DEFAULTS[name])

    @property
    def SECRETS(self) -> list[str | bytes]:
        value = self._get("SECRETS")
        secrets = [value] if isinstance(value, (str, bytes)) else value
        if not isinstance(secrets, (list, tuple)) or not all(
            isinstance(s, (str, bytes)) and s for s in secrets
        ):
            raise ImproperlyConfigured(
                "EDUZZ_WEBHOOKS['SECRETS'] must be a list of non-empty strings."
            )
        return list(secrets)

    @property
    def VERIFY_SIGNATURE(self) -> bool:
        return bool(self._get("VERIFY_SIGNATURE"))

    @property
    def MAX_BODY_SIZE(self) -> int:
        return int(self._number("MAX_BODY_SIZE", minimum=1, whole=True))

    @property
    def NAIVE_DATETIME_TIMEZONE(self) -> zoneinfo.ZoneInfo:
        name = self._get("NAIVE_DATETIME_TIMEZONE")
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ImproperlyConfigured(
                f"EDUZZ_WEBHOOKS['NAIVE_DATETIME_TIMEZONE'] is {name!r}, which is not a time "
                "zone this system knows."
            ) from None

    @property
    def MAX_EVENT_AGE(self) -> float | None:
        value = self._number("MAX_EVENT_AGE", minimum=0.001, optional=True)
        return None if value is None else float(value)

    @property
    def PROCESS_IN_BACKGROUND(self) -> bool:
        return bool(self._get("PROCESS_IN_BACKGROUND"))

    @property
    def TASK_BACKEND(self) -> str:
        return str(self._get("TASK_BACKEND"))

    @property
    def PAYLOAD_RETENTION_DAYS(self) -> int | None:
        value = self._number(
            "PAYLOAD_RETENTION_DAYS", minimum=0, maximum=LONGEST.days, whole=True, optional=True
        )
        return None if value is None else int(value)

    @property
    def ATTEMPT_TIMEOUT(self) -> dt.timedelta:
        maximum = int(LONGEST.total_seconds())
        return dt.timedelta(seconds=self._number("ATTEMPT_TIMEOUT", minimum=1, maximum=maximum))

    def _number(
        self,
        name: str,
        *,
        minimum: float,
        maximum: float = math.inf,
        whole: bool = False,
        optional: bool = False,
    ) -> Any:
        value = self._get(name)
        if value is None and optional:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int if whole else (int, float))
            or not _is_finite(value)
            or not minimum <= value <= maximum
        ):
            kind = "a whole number" if whole else "a number of seconds"
            raise ImproperlyConfigured(
                f"EDUZZ_WEBHOOKS[{name!r}] must be {kind} of at least {minimum}"
                + (f" and at most {maximum}" if maximum < math.inf else "")
                + (" or None" if optional else "")
                + f"; it is {value!r}."
            )
        return value


def _is_finite(value: float) -> bool:
    """Whether ``value`` is a finite number a float can hold (a larger int is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


conf = Settings()
