"""Verification for a request: what is remote is fetched while no database session is held.

A request that verifies a foreign credential may need the issuer's DID document or key set, its
status lists, the lists' keys and JSON-LD contexts, each from another host. Waiting for them
with a database session open would let a slow host hold the pool's connections (and the
request's database slot) for as long as it drips: twenty slow verifications once made `/health`
wait 37 s. So a request verifies in rounds. Each round is a whole verification in one short
session, with the fetcher answering from what this request has already fetched only
(`Fetcher.answering_from`); what it lacked is noted, and when the round needed anything, the
session is closed, the missing documents are fetched side by side on the fetch threads (the
event loop waits, no worker thread does), and the next round starts. The round that needed
nothing new is the answer: the same checks in the same order as one verification with all its
documents at hand, so the verdict means what it always meant (a document that could not be had
makes its check `error`, and the status `unknown`). A credential that needs nothing remote, like
every one of ours, takes one round.

A request's fetches together end by `REQUEST_BUDGET` times the fetch timeout: past it (or past
`MAX_FETCHES_PER_REQUEST` documents) a document not had is unknown, and the last round closes
the prefetch so that nothing more is wanted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from app.core.context import AppContext
from app.core.fetch import MAX_FETCHES_PER_REQUEST, Prefetch
from app.verify.service import Verification, Verifier

T = TypeVar("T")

# A request's fetches together get this many times `MICROCRED_FETCH_TIMEOUT`.
REQUEST_BUDGET = 2
# Rounds of one request: each fetches at least one document; the last fetches none.
MAX_ROUNDS = 6


async def verify_for_request(
    ctx: AppContext,
    credential: str | dict[str, Any],
    present: Callable[[Verification], T],
) -> T:
    """Verify `credential` and turn the verification into what the caller answers with
    (`present` runs in the session, so it may read the record the verification holds)."""
    prefetch = Prefetch(
        deadline=time.monotonic() + REQUEST_BUDGET * ctx.settings.fetch_timeout,
        max_fetches=MAX_FETCHES_PER_REQUEST,
    )
    for round_ in range(MAX_ROUNDS):
        if round_ == MAX_ROUNDS - 1:
            prefetch.close()
        # A database slot before a worker thread (see core.deps): waiting for a pooled
        # connection inside a thread could starve the threads that requests holding
        # connections need to finish. Neither is held while the network is waited for.
        async with ctx.db_slots():
            answer = await run_in_threadpool(_round, ctx, credential, prefetch, present)
        if not prefetch.wanted:
            return answer
        await ctx.fetcher.fill(prefetch)
    raise AssertionError("unreachable: the last round wants nothing")  # pragma: no cover


def _round(
    ctx: AppContext,
    credential: str | dict[str, Any],
    prefetch: Prefetch,
    present: Callable[[Verification], T],
) -> T:
    with (
        ctx.fetcher.answering_from(prefetch),
        (ctx.verify_sessions or ctx.read_sessions)() as session,
    ):
        return present(Verifier.from_context(ctx, session).verify(credential))
