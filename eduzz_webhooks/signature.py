"""HMAC-SHA256 signatures of raw request bodies, as Eduzz computes them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def sign(secret: str | bytes, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(key, body, hashlib.sha256).hex()


def is_valid(signature: str | None, body: bytes, secrets: Iterable[str | bytes]) -> bool:
    """Whether ``signature`` is the signature of ``body`` under any of ``secrets``.

    Every secret is checked, each in constant time, so the answer's timing does
    not tell which secret (if any) came close. The header must be exactly the
    lowercase hex digest Eduzz sends: no prefix, no whitespace, no other case.
    """
    if not signature:
        return False
    given = signature.encode("ascii", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(secret, body).encode(), given)
    return matched
