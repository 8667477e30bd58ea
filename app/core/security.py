"""Secrets that authenticate callers: the operator's token and issuers' API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "mck_"


def new_api_key() -> str:
    """A fresh API key: 256 bits of randomness behind a recognisable prefix (secret scanners)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret; a slow KDF adds nothing for 256-bit random tokens."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
