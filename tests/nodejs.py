"""Independent JavaScript implementations for tests: node with the packages of `tests/js`.

The packages are installed by `make test-deps` (part of `make test` and `.ci/run`: `npm ci` from
the lockfile), never from inside a test; without node or the packages those tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def ensure_package(package: str) -> Path:
    """The `tests/js` folder, once `package` is there (skips the test when it is not)."""
    if shutil.which("node") is None:
        pytest.skip("node is needed for the independent JavaScript implementations")
    if not (JS_DIR / "node_modules" / package / "package.json").is_file():
        pytest.skip(f"the node package {package!r} is not installed: run `make test-deps`")
    return JS_DIR


def run_node(
    script: str,
    stdin: str,
    *,
    package: str,
    preload: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `tests/js/<script>` with `stdin` as its input, once `package` is installed.

    `preload`: a module of `tests/js` imported first (`node --import`); `env`: added variables."""
    cwd = ensure_package(package)
    return subprocess.run(
        [
            "node",
            *(["--import", (cwd / preload).as_uri()] if preload else []),
            str(cwd / script),
        ],
        env={**os.environ, **env} if env else None,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )
