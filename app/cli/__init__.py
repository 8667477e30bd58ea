"""`microcred` command line: database, server, issuers, achievements, issuance, verification.

One module per command group; each registers its commands on the root `cli` when imported.
"""

from __future__ import annotations

from app.cli import achievements, credentials, issuers, server, trust, verify
from app.cli.common import cli

__all__ = ["achievements", "cli", "credentials", "issuers", "main", "server", "trust", "verify"]


def main() -> None:
    cli()
