"""The job runner: background threads (`job_threads` per process) that work queued jobs in chunks.

Every `microcred serve` worker process runs them, and `microcred worker` runs them without HTTP.
They need no coordination beyond the database: chunks are claimed with row locks (PostgreSQL) or
under SQLite's single writer, and each chunk commits with its rows' outcomes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import psycopg

from app.core.context import AppContext
from app.core.metrics import JOB_ROWS
from app.jobs import repository, service

log = logging.getLogger("microcred.jobs")


class JobRunner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start `job_threads` threads. Two overlap a chunk's database writes (the GIL is free
        while psycopg waits) with the signing of the next chunk; they claim disjoint chunks.

        On PostgreSQL one more thread listens for jobs queued by any process (`_listen`)."""
        if self._threads:
            return
        for n in range(self.ctx.settings.job_threads):
            thread = threading.Thread(target=self._loop, name=f"microcred-jobs-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.ctx.engine.dialect.name == "postgresql":
            listener = threading.Thread(
                target=self._listen, name="microcred-jobs-listen", daemon=True
            )
            listener.start()
            self._threads.append(listener)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the chunk in progress (a chunk interrupted here would be redone anyway)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def wake(self) -> None:
        """Look at the queue now (a job was just submitted in this process)."""
        self._wake.set()

    def work_job(self, job_id: uuid.UUID, progress: Callable[[int], None] | None = None) -> int:
        """Work one job until no chunk of it is claimable; the rows settled here."""
        settings = self.ctx.settings
        done = 0
        while not self._stop.is_set():
            session = self.ctx.sessions()
            try:
                n = service.work_chunk(
                    session,
                    settings=settings,
                    keystore=self.ctx.keystore,
                    job_id=job_id,
                    chunk_size=settings.job_chunk_size,
                )
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
            if n == 0:
                break
            JOB_ROWS.inc(n)
            done += n
            if progress is not None:
                progress(n)
        return done

    def run_once(self) -> int:
        """One pass over the open jobs, oldest first; the rows settled."""
        with self.ctx.read_sessions() as session:
            job_ids = list(repository.open_job_ids(session, limit=20))
        return sum(self.work_job(job_id) for job_id in job_ids)

    def run_until_idle(self) -> int:
        total = 0
        while True:
            n = self.run_once()
            total += n
            if n == 0:
                return total

    def _listen(self) -> None:
        """Wake the job threads when any process queues a job (LISTEN; submit NOTIFYs at commit).

        Without it, a job submitted to another replica or worker process waits for this one's next
        poll (`job_poll_interval`) before this process joins in. One connection of its own, outside
        the pool; on a lost connection, reconnect (and look at the queue: a job may have come
        meanwhile).
        """
        conninfo = self.ctx.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {repository.CHANNEL}")
                    failures = 0
                    self._wake.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except psycopg.Error as exc:
                failures += 1
                log.warning("job runner: listening for jobs failed (%s); retrying", exc)
                self._stop.wait(min(60.0, 2.0**failures))

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                worked = self.run_once()
                failures = 0
            except Exception:
                failures += 1
                log.exception("job runner: a chunk failed; it stays pending and will be retried")
                worked = 0
                # Back off on repeated errors (database down…), up to a minute.
                time.sleep(min(60.0, self.ctx.settings.job_poll_interval * 2**failures))
            if worked == 0 and not self._stop.is_set():
                self._wake.wait(self.ctx.settings.job_poll_interval)
                self._wake.clear()
