"""Fill a PostgreSQL database with filler credentials, fast: rows made by the server itself.

`python -m bench.seed --url postgresql+psycopg://postgres@127.0.0.1:5432/microcred_bench_x
--issuer bench-academy --total 10000000` adds rows to `credentials` until the table holds
`--total`, for one issuer (its first achievement, its active signing key). Every row is made by
PostgreSQL in `INSERT … SELECT … FROM generate_series(…)`, one status list of 131,072 rows per
statement, several lists per transaction with `synchronous_commit=off` and the foreign-key
triggers skipped (`session_replication_role=replica`, superuser; the keys are read first); nothing
of the schema is dropped or rebuilt, so every index is maintained as issuing would maintain it.
Then `VACUUM (ANALYZE)` and `CHECKPOINT`, so that no background work on the fresh rows runs into
what is measured next.

Filler rows are shaped like real ones where the database looks (random uuid4 ids, the issuer's
foreign keys, a subject id, issue dates spread over the past, `active`, a revocation list and an
index unique in it) but carry a short dummy `jwt`: they are never verified, only stored beside
the real credentials that are. They go into status lists of their own, created `full`, so the
issuing path never takes a slot from them (it only opens non-full lists).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

LIST_SIZE = 131_072  # the status lists' size (Bitstring Status List minimum, herd privacy)
LISTS_PER_TRANSACTION = 4


@dataclass(frozen=True)
class Seeded:
    inserted: int
    seconds: float
    total: int
    lists: int
    settle_seconds: float = 0.0  # VACUUM ANALYZE and CHECKPOINT after the inserts

    @property
    def per_second(self) -> float:
        return self.inserted / self.seconds if self.seconds > 0 else 0.0


_NEW_LISTS = text(
    """
    INSERT INTO status_lists (id, issuer_id, purpose, seq, size, "full", version, created_at, updated_at)
    SELECT gen_random_uuid(), :issuer, 'revocation', :after + g, :size, true, 0, now(), now()
    FROM generate_series(1, :n) AS g
    RETURNING id
    """
)

_FILL_LIST = text(
    """
    INSERT INTO credentials (
        id, issuer_id, achievement_id, signing_key_id, subject_id, valid_from, issued_at, jwt,
        status, revocation_list_id, revocation_index, recipient_name_hidden
    )
    SELECT gen_random_uuid(), :issuer, :achievement, :key, 'urn:uuid:' || gen_random_uuid(),
           t.at, t.at, 'filler', 'active', :list, g - 1, false
    FROM generate_series(1, :rows) AS g
    CROSS JOIN LATERAL (SELECT now() - g * interval '7 seconds' AS at) AS t
    """
)


def _issuer_parts(conn: Connection, slug: str) -> tuple[object, object, object]:
    row = conn.execute(
        text(
            """
            SELECT i.id, a.id, k.id
            FROM issuers i
            JOIN achievements a ON a.issuer_id = i.id
            JOIN signing_keys k ON k.issuer_id = i.id AND k.status = 'active'
            WHERE i.slug = :slug
            ORDER BY a.created_at
            LIMIT 1
            """
        ),
        {"slug": slug},
    ).first()
    if row is None:
        raise SystemExit(f"seed: no issuer {slug!r} with an achievement and an active key")
    return row[0], row[1], row[2]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM credentials")).scalar_one())


def seed(
    engine: Engine,
    *,
    slug: str,
    total: int,
    progress: Callable[[str], None] = lambda _line: None,
) -> Seeded:
    """Add filler credentials of issuer `slug` until `credentials` holds `total` rows."""
    started = time.perf_counter()
    have = count(engine)
    need = max(0, total - have)
    lists = -(-need // LIST_SIZE)
    if need == 0:
        return Seeded(0, 0.0, have, 0)
    with engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            raise SystemExit("seed: PostgreSQL only (generate_series, gen_random_uuid)")
        issuer, achievement, key = _issuer_parts(conn, slug)
        after = conn.execute(
            text(
                "SELECT coalesce(max(seq), 0) FROM status_lists "
                "WHERE issuer_id = :i AND purpose = 'revocation'"
            ),
            {"i": issuer},
        ).scalar_one()
        list_ids = list(
            conn.execute(
                _NEW_LISTS, {"issuer": issuer, "after": after, "size": LIST_SIZE, "n": lists}
            ).scalars()
        )
        superuser = bool(
            conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
        )
    remaining = need
    done = 0
    for start in range(0, lists, LISTS_PER_TRANSACTION):
        with engine.begin() as conn:
            # Losing the last transactions in a crash is fine for filler; waiting for the WAL
            # flush of each is not. `replica` skips the foreign-key triggers (four lookups a
            # row, a third of the time): the keys are the issuer's rows read above.
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            if superuser:  # only a superuser may
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            for list_id in list_ids[start : start + LISTS_PER_TRANSACTION]:
                rows = min(LIST_SIZE, remaining)
                conn.execute(
                    _FILL_LIST,
                    {
                        "issuer": issuer,
                        "achievement": achievement,
                        "key": key,
                        "list": list_id,
                        "rows": rows,
                    },
                )
                remaining -= rows
                done += rows
        elapsed = time.perf_counter() - started
        progress(f"  {have + done:>12,} rows ({done / elapsed:,.0f} rows/s, {elapsed:.0f} s)")
    seeded_at = time.perf_counter()
    settle(engine)
    return Seeded(
        done,
        seeded_at - started,
        have + done,
        lists,
        settle_seconds=time.perf_counter() - seeded_at,
    )


def settle(engine: Engine) -> None:
    """What a database that has had time would have done: statistics, the visibility map and hint
    bits (VACUUM ANALYZE), dirty pages written (CHECKPOINT), no autovacuum of the fresh rows left
    to start in the middle of a measurement."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM (ANALYZE) credentials"))
        superuser = conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
        if superuser:
            conn.execute(text("CHECKPOINT"))
        for _ in range(600):  # an autovacuum that started anyway: wait for it (at most 10 min)
            running = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_progress_vacuum "
                    "WHERE relid = 'credentials'::regclass"
                )
            ).scalar_one()
            if not running:
                break
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of a migrated PostgreSQL db")
    parser.add_argument("--issuer", required=True, help="slug of the issuer the rows belong to")
    parser.add_argument("--total", type=int, required=True, help="rows `credentials` should hold")
    args = parser.parse_args(argv)
    engine = create_engine(args.url)
    try:
        done = seed(engine, slug=args.issuer, total=args.total, progress=print)
    finally:
        engine.dispose()
    print(
        f"seeded {done.inserted:,} rows in {done.seconds:.1f} s ({done.per_second:,.0f} rows/s), "
        f"then VACUUM ANALYZE + CHECKPOINT in {done.settle_seconds:.1f} s; credentials now holds "
        f"{done.total:,} rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
