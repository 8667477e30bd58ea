"""A throwaway PostgreSQL cluster for the test run, when none is configured.

`make test` (and plain `pytest`) run every database test on PostgreSQL too. When
MICROCRED_TEST_DATABASE_URL is unset and PostgreSQL's server binaries are installed (`initdb`,
`pg_ctl`: MICROCRED_TEST_PG_BINDIR, else `pg_config --bindir`, else the newest
/usr/lib/postgresql/*/bin, else PATH), the test session's controller process creates a cluster
in a temporary directory, serving on a free 127.0.0.1 port and a unix socket in that directory,
and exports its URL before any xdist worker starts, so every worker shares it. It is stopped and
removed when the session ends, whether the tests passed, failed or were interrupted.

PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` system user
(`runuser`), which the Debian packages create. Durability is off (`fsync`,
`synchronous_commit`, `full_page_writes`): a crash loses a test database, nothing else.

`MICROCRED_TEST_DATABASE_URL=` (set, empty) turns PostgreSQL off: those tests are skipped.
Run `python tests/pgcluster.py` to start one by hand (it prints the URL and waits for Ctrl-C).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ENV = "MICROCRED_TEST_DATABASE_URL"
SERVER_USER = "postgres"


def find_bindir() -> Path | None:
    """Where `initdb` and `pg_ctl` are, or None when PostgreSQL's server is not installed."""
    candidates: list[str] = []
    if configured := os.environ.get("MICROCRED_TEST_PG_BINDIR"):
        candidates.append(configured)
    if pg_config := shutil.which("pg_config"):
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(done.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True))
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        path = Path(candidate)
        if all(os.access(path / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running throwaway cluster; `stop()` ends it and removes its directory."""

    bindir: Path
    root: Path
    port: int
    as_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=timeout, cwd=self.root
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class ClusterError(RuntimeError):
    pass


def start(bindir: Path) -> Cluster:
    """initdb a cluster in a fresh temporary directory and start it on a free loopback port."""
    as_user: str | None = None
    root = Path(tempfile.mkdtemp(prefix="microcred-pg-"))
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise ClusterError(
                "running as root, and PostgreSQL refuses root: create a `postgres` user "
                "(the Debian packages do), or set MICROCRED_TEST_DATABASE_URL"
            ) from None
        if shutil.which("runuser") is None:
            shutil.rmtree(root, ignore_errors=True)
            raise ClusterError("running as root without `runuser` to start PostgreSQL as postgres")
        as_user = SERVER_USER
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir, root, 0, as_user)
    try:
        done = cluster._run(
            "initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise ClusterError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        for _ in range(5):  # another process may take the free port before the server binds it
            cluster.port = _free_port()
            options = " ".join(
                (
                    "-c listen_addresses=127.0.0.1",
                    f"-p {cluster.port}",
                    f"-k {root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                )
            )
            done = cluster._run(
                "pg_ctl", "-D", str(root / "data"), "-l", str(root / "server.log"),
                "-o", options, "-w", "-t", "60", "start",
            )  # fmt: skip
            if done.returncode == 0:
                return cluster
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        raise ClusterError(f"pg_ctl start failed: {done.stderr.strip()}\n{log[-2000:]}")
    except BaseException:
        cluster.stop()
        raise


def main() -> int:
    bindir = find_bindir()
    if bindir is None:
        print("pgcluster: no PostgreSQL server binaries here", file=sys.stderr)
        return 3
    cluster = start(bindir)
    try:
        print(cluster.url, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
