"""Independent JavaScript implementations for tests: node with the packages of `tests/js`.

The packages are installed by `npm ci` from the lockfile the first time a test needs one that
is missing; without node and npm those tests are skipped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def ensure_package(package: str) -> Path:
    """The `tests/js` folder with `package` installed (skips the test without node and npm)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the independent JavaScript implementations")
    installed = JS_DIR / "node_modules" / package / "package.json"
    if not installed.is_file():
        # Parallel test processes may all find it missing: one installs, the others wait.
        with (Path(tempfile.gettempdir()) / "microcred-npm-ci.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not installed.is_file():
                subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund"],
                    cwd=JS_DIR,
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
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
