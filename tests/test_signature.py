from __future__ import annotations

import hashlib
import hmac

from eduzz_webhooks.signature import is_valid, sign

BODY = b'{"id":"1","event":"ping"}'


def test_sign_is_lowercase_hex_hmac_sha256_of_raw_bytes():
    expected = hmac.new(b"k" * 20, BODY, hashlib.sha256).hexdigest()
    assert sign("k" * 20, BODY) == expected
    assert sign(b"k" * 20, BODY) == expected


def test_valid_under_any_configured_secret():
    secrets = ["first-secret-000000", "second-secret-11111"]
    assert is_valid(sign(secrets[1], BODY), BODY, secrets)
    assert is_valid(sign(secrets[0], BODY), BODY, secrets)


def test_invalid_signatures():
    secret = "the-secret-0123456789"
    good = sign(secret, BODY)
    for bad in [
        None,
        "",
        good.upper(),
        f" {good}",
        f"{good}\n",
        f"sha256={good}",
        good[:-1],
        good + "0",
        sign("other-secret-0123456", BODY),
        sign(secret, BODY + b" "),
        "é" * 64,
    ]:
        assert not is_valid(bad, BODY, [secret]), bad


def test_no_secrets_means_nothing_is_valid():
    assert not is_valid(sign("", BODY), BODY, [])
