"""The dispatcher: sends due webhook deliveries from the outbox, outside any request.

One daemon thread per process (started by the app's lifespan when `background_workers` is on)
polls the outbox. Each round claims a small batch of due deliveries and commits the claim before
sending: the claim pushes their due time to the end of a lease and tags them with the lease's
id, so that another process (PostgreSQL: `FOR UPDATE SKIP LOCKED`) never takes the same ones, a
crashed sender's deliveries come due again when the lease ends, and only the lease holder records
the outcome. Sending happens with no transaction open, through the guarded fetcher (https, public
addresses only, checked again now: DNS can change; the connection pinned to the checked address).
Then one short transaction records the attempt: 2xx → succeeded; otherwise the next attempt is due
after an exponential backoff with jitter, until the attempts run out (failed).

Delivery is at least once: a receiver that answered 2xx after our timeout, or a process that died
between sending and recording, is sent the message again, under the same `webhook-id`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.context import AppContext
from app.core.db import utcnow
from app.core.fetch import Fetcher, RemoteFetchError
from app.core.keys import KeyStore, UnusableKey
from app.core.metrics import WEBHOOK_DELIVERIES
from app.webhooks import repository, service
from app.webhooks.models import DeliveryState

log = logging.getLogger("microcred.webhooks")

# Deliveries claimed (and sent in parallel) per round; a round's lease must outlast its sends.
BATCH_SIZE = 8
MAX_ROUNDS = 100  # per run_once: a bound, in case deliveries keep coming due
MAX_ERROR_CHARS = 500


class Dispatcher:
    """Claims due deliveries and sends them; `run_once` for tests, `start`/`stop` for the app."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        fetcher: Fetcher,
        settings: Settings,
        keystore: KeyStore,
        read_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self._sessions = sessions
        self._keystore = keystore  # opens the endpoints' sealed secrets
        # On SQLite a read-only session checks for due work without taking the write lock.
        self._read_sessions = read_sessions or sessions
        self._fetcher = fetcher
        self._settings = settings
        # Longer than any round's sends: connecting (to each address) and waiting for the answer.
        self.lease = timedelta(seconds=5 * settings.webhook_timeout + 30)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_context(cls, ctx: AppContext) -> Dispatcher:
        return cls(
            sessions=ctx.sessions,
            read_sessions=ctx.read_sessions,
            fetcher=ctx.fetcher,
            settings=ctx.settings,
            keystore=ctx.keystore,
        )

    # --- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        """Poll every `webhook_poll_interval` seconds in a daemon thread until `stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; waits for the round in flight (at most about one send timeout)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self._settings.webhook_timeout + 5)
            self._thread = None
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=BATCH_SIZE, thread_name_prefix="webhook-send"
                )
            return self._pool

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # a database hiccup must not end the thread: retry next round
                log.exception("webhook dispatcher round failed")
            self._stopping.wait(self._settings.webhook_poll_interval)

    # --- one pass -------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Send every delivery due now; how many attempts were made."""
        sent = 0
        for _ in range(MAX_ROUNDS):
            if self._stopping.is_set() and self._thread is not None:
                break
            batch = self._claim()
            if not batch:
                break
            list(self._executor().map(self._attempt, batch))
            sent += len(batch)
            if len(batch) < BATCH_SIZE:
                break
        return sent

    def _claim(self) -> list[repository.Claimed]:
        now = utcnow()
        with self._read_sessions() as session, session.begin():
            if not repository.any_due(session, now):
                return []
        with self._sessions() as session, session.begin():
            return repository.claim_due(
                session,
                now=now,
                lease_until=now + self.lease,
                lease_id=uuid.uuid4(),
                limit=BATCH_SIZE,
            )

    def _attempt(self, claimed: repository.Claimed) -> None:
        if not claimed.enabled:
            self._record(
                claimed,
                {"state": DeliveryState.cancelled, "last_error": "endpoint disabled"},
            )
            return
        msg_id = service.webhook_id(claimed.message_id)
        body = claimed.body.encode()
        timestamp = int(time.time())
        try:
            secret = self._keystore.unseal(
                claimed.secret, context=service.secret_context(claimed.endpoint_id)
            )
        except UnusableKey as exc:  # a wrong or missing passphrase: retried, and said why
            log.error("webhook delivery %s: %s", claimed.delivery_id, exc)
            self._record(claimed, self._outcome(claimed.attempts + 1, None, f"secret: {exc}"))
            return
        headers = service.signed_headers(secret, msg_id=msg_id, timestamp=timestamp, body=body)
        status: int | None = None
        error: str | None = None
        try:
            status = self._fetcher.post(
                claimed.url,
                content=body,
                headers=headers,
                timeout=self._settings.webhook_timeout,
            )
        except RemoteFetchError as exc:  # refused address, no connection, timeout
            error = str(exc)
        except Exception as exc:  # one bad delivery must not stop the others
            log.exception("webhook delivery %s failed unexpectedly", claimed.delivery_id)
            error = f"unexpected error: {type(exc).__name__}"
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        self._record(claimed, self._outcome(claimed.attempts + 1, status, error))

    def _outcome(self, attempts: int, status: int | None, error: str | None) -> dict[str, Any]:
        now = utcnow()
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": status,
            "last_error": error[:MAX_ERROR_CHARS] if error else None,
        }
        if error is None:
            values.update(state=DeliveryState.succeeded, delivered_at=now)
        elif attempts >= self._settings.webhook_max_attempts:
            values.update(state=DeliveryState.failed)
        else:
            delay = service.retry_delay(
                attempts,
                base=self._settings.webhook_retry_base,
                cap=self._settings.webhook_retry_max_interval,
            )
            values.update(next_attempt_at=now + timedelta(seconds=delay))
        return values

    def _record(self, claimed: repository.Claimed, values: dict[str, Any]) -> None:
        with self._sessions() as session, session.begin():
            if not repository.record_attempt(session, claimed, values):
                log.info("webhook delivery %s: claim lost, outcome dropped", claimed.delivery_id)
                return
        WEBHOOK_DELIVERIES.labels(str(values.get("state", "retry"))).inc()
