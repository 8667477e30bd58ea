"""Serve an ASGI app the way `microcred serve --workers 1` does, optionally with a loop-stall probe.

`python -m bench.serve MODULE:FACTORY --port N` runs uvicorn (uvloop, httptools, one worker, in
this process — as `uvicorn.run` does with one worker) with the options of `microcred serve`.

`--probe FILE` serves on the standard library's asyncio loop instead, whose callbacks are Python
objects: each callback the loop runs (a step of a request's task — everything a request does
between two awaits — or an I/O callback) is timed in CPU time of the loop's thread
(`time.thread_time`), so neither the other processes on this machine nor threads waiting for
the GIL count, only the work that holds the loop. SIGUSR1 starts a measurement, SIGUSR2 ends it
and writes to FILE, as JSON: how many callbacks ran, how many took over 1 and 5 ms, the longest
and the five worst (with the callback's repr, which names the coroutine). The probe costs a
little per callback: the bench takes its throughput figures from the uvloop servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from asyncio import events
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
import uvloop


@dataclass
class Probe:
    """Per-callback CPU time of the loop's thread, between SIGUSR1 and SIGUSR2."""

    stats: Path
    on: bool = False
    count: int = 0
    over_1ms: int = 0
    durations_over_5ms: list[tuple[float, str]] = field(default_factory=list)
    longest_ms: float = 0.0

    def start(self) -> None:
        self.count = self.over_1ms = 0
        self.longest_ms = 0.0
        self.durations_over_5ms.clear()
        self.on = True

    def stop(self) -> None:
        self.on = False
        report = {
            "callbacks": self.count,
            "callbacks_over_1ms": self.over_1ms,
            "callbacks_over_5ms": len(self.durations_over_5ms),
            "longest_callback_ms": round(self.longest_ms, 3),
            "worst": sorted(self.durations_over_5ms, reverse=True)[:5],
        }
        self.stats.write_text(json.dumps(report))

    def install(self) -> None:
        """Time every `asyncio.Handle._run` (tasks' steps are scheduled as Handles)."""
        run = events.Handle._run
        probe = self

        def timed(handle: events.Handle) -> None:
            if not probe.on:
                run(handle)
                return
            t0 = time.thread_time()
            run(handle)
            ms = (time.thread_time() - t0) * 1000
            probe.count += 1
            if ms > 1:
                probe.over_1ms += 1
                probe.longest_ms = max(probe.longest_ms, ms)
                if ms > 5:
                    probe.durations_over_5ms.append((round(ms, 2), repr(handle)[:300]))

        events.Handle._run = timed  # type: ignore[method-assign]


async def _serve(config: uvicorn.Config, probe: Probe | None) -> None:
    if probe is not None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, probe.start)
        loop.add_signal_handler(signal.SIGUSR2, probe.stop)
    await uvicorn.Server(config).serve()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    p.add_argument("app", help="MODULE:FACTORY of the ASGI app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--probe", type=Path, help="serve on asyncio's loop, timing callbacks; SIGUSR2 writes here"
    )
    p.add_argument("--access-log", action="store_true")
    args = p.parse_args(argv)
    config = uvicorn.Config(
        args.app,
        factory=True,
        host=args.host,
        port=args.port,
        loop="asyncio" if args.probe else "uvloop",
        http="httptools",
        workers=1,
        access_log=args.access_log,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1,::1",
        log_level="info",
    )
    if args.probe is None:
        uvloop.run(_serve(config, None))
        return
    probe = Probe(args.probe)
    probe.install()
    asyncio.run(_serve(config, probe))


if __name__ == "__main__":
    main()
