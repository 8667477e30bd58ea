"""Rate limits on guessing and on the costly public endpoints, with the `limits` library.

Two kinds of budget, each in the `limits` notation ("10/minute;100/hour"):

- **Failures** of a credential check (operator token, issuer API key, management token,
  portfolio owner key) are counted per client address *and* per credential being guessed (the
  operator token, the first characters of a presented API key or management token, a portfolio
  handle). A check is refused with 429 *before* it runs while either budget is spent, so a
  guesser learns nothing more, from one address or from many; successful checks cost nothing, so
  correct callers elsewhere are unaffected by someone else's burst.
- **Requests** to public endpoints that do real work for anyone (the verify API, the /verify
  form) are counted per client address, whatever their outcome.

The client address is the ASGI client: uvicorn takes it from `X-Forwarded-For` only when the peer
is one of `--forwarded-allow-ips` (see README, "Behind a reverse proxy"). Counters live in memory
(one process) unless `MICROCRED_RATE_LIMIT_STORAGE` names a shared store (`redis://…`), which
every worker and replica then shares. A store that fails lets requests through (logged): a rate
limiter must not turn a cache outage into an outage of the service.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.core.config import Settings
from app.core.errors import AppError

log = logging.getLogger("microcred")


class LimitClass(StrEnum):
    """What a budget counts; the value prefixes the storage keys."""

    auth = "auth"  # failed credential checks
    verify = "verify"  # verify API requests
    verify_form = "verify-form"  # /verify form posts


class RateLimited(AppError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def client_address(request: Request) -> str:
    """The ASGI client's address (uvicorn resolves trusted proxies' X-Forwarded-For into it)."""
    return request.client.host if request.client else "unknown"


def credential_key(kind: str, presented: str, *, chars: int | None = 12) -> str:
    """The storage key of a credential being guessed: its first `chars` characters (all with
    None), hashed: never the secret, nor any of it, in a shared store."""
    part = presented if chars is None else presented[:chars]
    digest = hashlib.sha256(part.encode("utf-8", "replace")).hexdigest()[:24]
    return f"{kind}:{digest}"


class RateLimiter:
    """The budgets of one app (one storage, one moving-window strategy)."""

    def __init__(
        self,
        *,
        enabled: bool,
        storage_uri: str,
        limits: dict[LimitClass, list[RateLimitItem]],
        per_credential: list[RateLimitItem],
    ) -> None:
        self.enabled = enabled
        self._limits = limits
        self._per_credential = per_credential
        self._strategy: MovingWindowRateLimiter | None = None
        if enabled:
            storage = storage_from_string(storage_uri, wrap_exceptions=True)
            if not isinstance(storage, Storage):  # an async:// scheme names an asyncio store
                raise ValueError(
                    f"MICROCRED_RATE_LIMIT_STORAGE {storage_uri!r} is not a sync store"
                )
            self._strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            enabled=settings.rate_limits_enabled,
            storage_uri=settings.rate_limit_storage,
            limits={
                LimitClass.auth: parse_many(settings.rate_limit_auth),
                LimitClass.verify: parse_many(settings.rate_limit_verify),
                LimitClass.verify_form: parse_many(settings.rate_limit_verify_form),
            },
            per_credential=parse_many(settings.rate_limit_auth_per_credential),
        )

    def _budgets(
        self, kind: LimitClass, client: str, credential: str | None
    ) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        budgets: list[tuple[RateLimitItem, tuple[str, ...]]] = [
            (item, (kind.value, "addr", client)) for item in self._limits[kind]
        ]
        if credential is not None:
            budgets += [(item, (kind.value, "cred", credential)) for item in self._per_credential]
        return budgets

    def _refusal(self, item: RateLimitItem, keys: tuple[str, ...]) -> RateLimited:
        assert self._strategy is not None  # noqa: S101 - only called when enabled
        reset = self._strategy.get_window_stats(item, *keys).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        what = "this client" if keys[1] == "addr" else "this credential"
        return RateLimited(
            f"Too many attempts from {what}; try again in {retry_after} s.",
            retry_after=retry_after,
        )

    def check(self, kind: LimitClass, client: str, credential: str | None = None) -> None:
        """Refuse (429) while a budget of `kind` is spent; spends nothing."""
        if self._strategy is None:
            return
        try:
            for item, keys in self._budgets(kind, client, credential):
                if not self._strategy.test(item, *keys):
                    raise self._refusal(item, keys)
        except StorageError as exc:
            log.warning("rate limit store unavailable: %s", type(exc.storage_error).__name__)

    def spend(
        self, kind: LimitClass, client: str, credential: str | None = None, *, cost: int = 1
    ) -> None:
        """Count `cost` against the budgets of `kind`; refuse (429) when one is over."""
        if self._strategy is None:
            return
        try:
            refused: RateLimited | None = None
            for item, keys in self._budgets(kind, client, credential):
                if not self._strategy.hit(item, *keys, cost=cost) and refused is None:
                    refused = self._refusal(item, keys)
        except StorageError as exc:
            log.warning("rate limit store unavailable: %s", type(exc.storage_error).__name__)
            return
        if refused is not None:
            raise refused

    @contextmanager
    def attempt(
        self, request: Request, credential: str | None, *failures: type[BaseException]
    ) -> Iterator[None]:
        """Around one credential check: refused while a failure budget is spent; a failure
        (one of `failures` raised inside) is counted, then re-raised as it was."""
        client = client_address(request)
        self.check(LimitClass.auth, client, credential)
        try:
            yield
        except failures:
            self.failed(client, credential)
            raise

    def failed(self, client: str, credential: str | None) -> None:
        """Count one failed credential check (the answer stays the caller's: 401, 403, 404)."""
        # This failure is answered as such (401, 404…); the next attempt is refused.
        with suppress(RateLimited):
            self.spend(LimitClass.auth, client, credential)


def limiter(request: Request) -> RateLimiter:
    """The app's rate limiter (built with the app, see app.main)."""
    found: RateLimiter = request.app.state.rate_limiter
    return found
