"""Readiness: whether the parts a request needs (database, key store, disk) serve right now.

`/health` answers from a result at most `health_cache_ttl` seconds old, and concurrent probes
share one evaluation: a load balancer probing every 100 ms, or a thousand probes at once, cost
the database one `SELECT 1` a second. `/health/live` does no work at all (the process answers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from app.core.context import AppContext

log = logging.getLogger("microcred")

# The database gets this long to answer the probe (a pool slot and `SELECT 1`).
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Readiness:
    """One evaluation: each part's state ("ok" or what is wrong) and why, for the operator."""

    parts: dict[str, str]
    reasons: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.parts.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.parts.items() if state != "ok"]


def data_folders(ctx: AppContext) -> list[Path]:
    """The folders the service writes to: the keys folder and, on SQLite, the database's."""
    folders = [ctx.settings.keys_dir]
    url = make_url(ctx.settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        folders.append(Path(url.database).resolve().parent)
    return folders


def _disk(ctx: AppContext) -> str | None:
    for folder in data_folders(ctx):
        if not folder.is_dir():
            continue  # the key store reports a missing keys folder; SQLite makes its own
        free = shutil.disk_usage(folder).free
        if free < ctx.settings.health_min_free_bytes:
            return (
                f"{folder} has {free} bytes free (less than {ctx.settings.health_min_free_bytes})"
            )
        if not os.access(folder, os.W_OK):
            return f"{folder} is not writable"
    return None


def _local_parts(ctx: AppContext) -> tuple[str | None, str | None]:
    try:
        keys = ctx.keystore.check()
    except OSError as exc:  # a folder vanishing under the check: report it, do not fail /health
        keys = f"the key store cannot be checked: {exc}"
    try:
        disk = _disk(ctx)
    except OSError as exc:
        disk = f"free space cannot be read: {exc}"
    return keys, disk


@dataclass
class ReadinessProbe:
    ctx: AppContext
    _result: Readiness | None = None
    _at: float = 0.0
    _running: dict[asyncio.AbstractEventLoop, asyncio.Task[Readiness]] = field(default_factory=dict)

    async def get(self) -> Readiness:
        ttl = self.ctx.settings.health_cache_ttl
        if self._result is not None and time.monotonic() - self._at < ttl:
            return self._result
        loop = asyncio.get_running_loop()
        task = self._running.get(loop)
        if task is None:
            task = self._running[loop] = loop.create_task(self._evaluate())
            task.add_done_callback(lambda _t: self._running.pop(loop, None))
        return await asyncio.shield(task)

    async def _evaluate(self) -> Readiness:
        parts: dict[str, str] = {}
        reasons: dict[str, str] = {}
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                async with self.ctx.db_slots():
                    await run_in_threadpool(self.ctx.ping_database)
            parts["database"] = "ok"
        except Exception as exc:  # any failure to answer is "unreachable", whatever its kind
            parts["database"] = "unreachable"
            reasons["database"] = f"{type(exc).__name__}: {next(iter(str(exc).splitlines()), '')}"
        keys, disk = await run_in_threadpool(_local_parts, self.ctx)
        parts["keys"] = "unavailable" if keys else "ok"
        parts["disk"] = "unavailable" if disk else "ok"
        for name, reason in (("keys", keys), ("disk", disk)):
            if reason:
                reasons[name] = reason
        for part, reason in reasons.items():  # once per evaluation, not per probe
            log.warning("health check: %s: %s", part, reason)
        result = Readiness(parts, reasons)
        self._result, self._at = result, time.monotonic()
        return result
