"""The test loop's own parts: the throwaway PostgreSQL cluster and the fuzz budgets."""

from __future__ import annotations

import socket

import budget
import pgcluster
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


def test_a_throwaway_cluster_serves_then_leaves_nothing_behind() -> None:
    bindir = pgcluster.find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    cluster = pgcluster.start(bindir)
    try:
        assert cluster.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        engine = create_engine(cluster.url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n int)"))
            conn.execute(text("INSERT INTO t VALUES (1), (2)"))
            assert conn.scalar(text("SELECT sum(n) FROM t")) == 3
            assert conn.scalar(text("SHOW fsync")) == "off"
            # Only loopback: the server listens on 127.0.0.1 and its own socket directory.
            assert conn.scalar(text("SHOW listen_addresses")) == "127.0.0.1"
            assert conn.scalar(text("SHOW unix_socket_directories")) == str(cluster.root)
        engine.dispose()
    finally:
        cluster.stop()
    assert not cluster.root.exists()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", cluster.port))


def test_the_session_uses_postgresql_when_binaries_exist() -> None:
    """`make test` on a machine with PostgreSQL's binaries runs the PostgreSQL variants."""
    import conftest

    if pgcluster.find_bindir() is None and conftest.PG_URL is None:
        pytest.skip("no PostgreSQL server binaries and no MICROCRED_TEST_DATABASE_URL")
    if conftest.PG_URL == "":
        pytest.skip("PostgreSQL turned off with MICROCRED_TEST_DATABASE_URL=")
    assert conftest.PG_URL, "binaries exist, yet no PostgreSQL for the tests"


def test_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(budget.ENV, "ci")
    assert budget.examples(3000, ci=600) == 600
    cap = budget.Cap(ci_seconds=0.0)
    assert cap.spent()
    with pytest.raises(AssertionError, match="only 0 cases"):
        cap.check_ran(minimum=1)
    monkeypatch.setenv(budget.ENV, "full")
    assert budget.examples(3000, ci=600) == 3000
    assert not budget.Cap(ci_seconds=0.0).spent()
    monkeypatch.setenv(budget.ENV, "nightly")
    with pytest.raises(ValueError, match="MICROCRED_TEST_BUDGET"):
        budget.current()
    with pytest.raises(ValueError, match="cannot exceed"):
        budget.examples(10, ci=20)
