"""Benchmarks of the real service; each figure printed next to a ceiling measured in the same run.

`make bench` (`python -m bench.run`) runs paths, qr and bulk; name sections to run those
(`python -m bench.run paths qr`, or MICROCRED_BENCH_SECTIONS=paths,qr):

- `paths`: `GET /health`, `POST /api/v1/verify`, the credential page and `POST
  /api/v1/credentials` side by side with a minimal FastAPI app (bench/reference.py), interleaved
  in rounds, on SQLite and on PostgreSQL; goals as ratios to the reference, verify's tail, and
  the longest event-loop callback (bench/paths.py);
- `qr`: QR images from the in-memory cache against rendered on every request; goal ≥ 30x
  (bench/qr.py);
- `scale`: verify latency with 10 million stored credentials against 10 thousand; goal within
  20 % (bench/scale.py, seeding with bench/seed.py; PostgreSQL only, a few minutes);
- `bulk`: bulk issuance on PostgreSQL, 10,000 and 100,000 rows, against sign + Core insert;
- `dataintegrity`: milliseconds per credential of issuing with an eddsa-rdfc-2022 proof and of
  verifying one, next to the VC-JWT alone, in process (bench/dataintegrity.py).

A section is a module of this package with `section(options: Options) -> list[Figure]` (or,
like bulk, `main(argv) -> int`, which prints its own figures); register it in SECTIONS below.

`--quick` (or MICROCRED_BENCH_QUICK=1) makes every phase shorter and the large scale run 1M rows
instead of 10M. Each section gets a fresh database: PostgreSQL (a `microcred_bench_*` database
on the server of MICROCRED_BENCH_DATABASE_URL, else one from ../shared/ci/ensure-postgres), or
SQLite when no PostgreSQL is installed; it is dropped afterwards. Servers are `microcred serve`
with one uvicorn worker on 127.0.0.1; the load comes from `wrk` (Debian package) when installed,
else from httpx. The client shares the machine's cores with the server (and PostgreSQL), so the
HTTP figures are lower bounds. Exit status: 0 all goals met, 1 a section failed or saw errors,
2 a goal was missed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from types import ModuleType

from bench.common import Figure, Options, machine_note

# `scale` seeds 10M rows (several minutes): run it by name (`make bench-scale`), so that the
# default run stays within ~10 minutes.
DEFAULT = ("paths", "qr", "bulk")
SECTIONS = {
    "paths": "bench.paths",
    "qr": "bench.qr",
    "scale": "bench.scale",
    "bulk": "bench.bulk",
    "dataintegrity": "bench.dataintegrity",
}


def parse_args(argv: list[str] | None) -> tuple[list[str], Options]:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=doc.split("\n")[0])
    p.add_argument(
        "sections",
        nargs="*",
        help=f"sections to run (default: {', '.join(DEFAULT)}, or MICROCRED_BENCH_SECTIONS): "
        f"{', '.join(SECTIONS)}",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("MICROCRED_BENCH_QUICK", "") not in {"", "0", "false"},
        help="short phases, 1M rows instead of 10M (also MICROCRED_BENCH_QUICK=1)",
    )
    p.add_argument("--connections", type=int, default=64, help="load connections (default 64)")
    p.add_argument("--seconds", type=int, help="seconds per load phase (default 5, quick 2)")
    p.add_argument("--httpx", action="store_true", help="drive the load with httpx, not wrk")
    p.add_argument("--large", type=int, help="rows of the large scale run (default 10M, quick 1M)")
    args = p.parse_args(argv)
    chosen = args.sections or [
        s for s in os.environ.get("MICROCRED_BENCH_SECTIONS", "").replace(",", " ").split() if s
    ]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    quick = bool(args.quick)
    options = Options(
        quick=quick,
        connections=args.connections,
        wrk_seconds=args.seconds or (2 if quick else 5),
        in_process_seconds=1.0 if quick else 2.0,
        use_httpx=args.httpx,
        scale_large=args.large or (1_000_000 if quick else 10_000_000),
        scale_requests=200 if quick else 400,
    )
    return chosen or list(DEFAULT), options


def _module(name: str) -> ModuleType | None:
    if importlib.util.find_spec(SECTIONS[name]) is None:
        return None
    return importlib.import_module(SECTIONS[name])


def main(argv: list[str] | None = None) -> int:
    sections, options = parse_args(argv)
    started = time.perf_counter()
    print(f"microcred bench — {machine_note()} before the run; sections: {', '.join(sections)}")
    figures: list[Figure] = []
    failed: list[str] = []
    for name in sections:
        module = _module(name)
        print(f"\n=== {name} {'=' * (90 - len(name))}")
        if module is None:
            print(f"({name}: {SECTIONS[name]} does not exist yet; skipped)")
            continue
        t0 = time.perf_counter()
        try:
            if hasattr(module, "section"):
                figures.extend(module.section(options))
            else:
                argv_ = list(getattr(module, "QUICK_ARGV", [])) if options.quick else []
                if module.main(argv_) != 0:
                    failed.append(name)
        except (Exception, SystemExit) as exc:
            print(f"! {name} failed: {exc}", file=sys.stderr)
            failed.append(name)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)")
    if figures:
        print(f"\n=== summary {'=' * 83}")
        header = f"{'figure':<36} {'measured':>14} {'ceiling':>26} {'ratio':>6} {'goal':>7}  {'':4} backend"
        print(header)
        print("-" * len(header))
        for f in figures:
            print(
                f"{f.name:<36} {f.measured:>14} {f.ceiling:>26} {f.ratio:>6} {f.goal:>7}  "
                f"{'ok' if f.passed else 'MISS':4} {f.backend}"
            )
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s; {machine_note()} after it)")
    if failed:
        print(f"failed sections: {', '.join(failed)}")
        return 1
    return 2 if any(not f.passed for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
