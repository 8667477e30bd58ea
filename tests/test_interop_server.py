"""Interoperability against the real service: `microcred serve` in a subprocess, spoken to over HTTP.

The signatures are checked with jwcrypto only (an independent JOSE implementation, not the PyJWT
the service signs with), from the keys the service publishes: its JWKS and its did:web document.
The command line (`microcred issue`, `microcred verify`) runs as a subprocess on the same database.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

pytestmark = pytest.mark.slow  # each test talks to a real server process started for this module

ADMIN_TOKEN = "interop-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALGORITHMS = ["ES256", "EdDSA", "RS256"]
START_TIMEOUT = 30.0


def _microcred() -> str:
    beside = Path(sys.executable).parent / "microcred"
    found = str(beside) if beside.exists() else shutil.which("microcred")
    assert found, "the microcred console script is not installed (pip install -e .)"
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _b64url_json(segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Server:
    """One `microcred serve` process on loopback; restartable on the same port, database and keys."""

    start_timeout = START_TIMEOUT

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
        env.update(
            {
                "MICROCRED_DATABASE_URL": f"sqlite:///{workdir / 'microcred.db'}",
                "MICROCRED_KEYS_DIR": str(workdir / "keys"),
                "MICROCRED_ADMIN_TOKEN": ADMIN_TOKEN,
                "MICROCRED_BASE_URL": self.base_url,
                "MICROCRED_ENV": "development",
            }
        )
        self.env = env

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `microcred ARGS` with the server's settings (same database and keys)."""
        return subprocess.run(
            [_microcred(), *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli_input(
        self, stdin: str, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """`microcred ARGS` with `stdin` on its standard input."""
        return subprocess.run(
            [_microcred(), *args],
            env=self.env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start `microcred serve` without waiting for it (several can then start side by side)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [_microcred(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the finalizer ends all of it
            )

    def started(self) -> bool:
        """Whether /health may be asked yet (a subclass waits for all its worker processes)."""
        return True

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()}")
            if self.started():
                try:
                    response = httpx.get(f"{self.base_url}/health", timeout=5.0)
                    if response.status_code == 200 and response.json()["database"] == "ok":
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"the server did not answer /health within {self.start_timeout} s:\n{self.log()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        return process.returncode

    def kill_group(self) -> None:
        """Last resort in the finalizer: anything left in the server's process group."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")[-4000:]


@contextmanager
def running_server(workdir: Path) -> Iterator[Server]:
    """A migrated, started `microcred serve`, always stopped (and its process group killed)."""
    srv = Server(workdir)
    migrated = srv.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        srv.start()
        yield srv
    finally:
        try:
            srv.stop()
        finally:
            srv.kill_group()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("interop")) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        yield client


def _issue(http: httpx.Client, algorithm: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh issuer signing with `algorithm`, one achievement, one credential: over HTTP."""
    slug = f"academy-{algorithm.lower()}-{os.urandom(3).hex()}"
    created = http.post(
        "/api/v1/issuers",
        json={
            "name": f"Academy {algorithm}",
            "url": "https://academy.example",
            "slug": slug,
            "algorithm": algorithm,
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    issuer = created.json()
    assert issuer["issuer"]["algorithm"] == algorithm
    key = {"Authorization": f"Bearer {issuer['api_key']['key']}"}
    achievement = http.post(
        "/api/v1/achievements",
        json={
            "name": "Welding Safety",
            "description": "Applies shop safety rules to MIG welding.",
            "criteria": {"narrative": "Passed a supervised practical."},
        },
        headers=key,
    )
    assert achievement.status_code == 201, achievement.text
    credential = http.post(
        "/api/v1/credentials",
        json={
            "achievement_id": achievement.json()["uuid"],
            "recipient": {"email": "kofi@example.com", "name": "Kofi Mensah"},
        },
        headers=key,
    )
    assert credential.status_code == 201, credential.text
    return issuer, credential.json()


def _did_web_url(did: str, scheme: str) -> str:
    """did:web → the URL of its DID document (did:web spec; our test server speaks http)."""
    assert did.startswith("did:web:")
    host, *path = did.removeprefix("did:web:").split(":")
    return f"{scheme}://{unquote(host)}/{'/'.join(path)}/did.json"


def _jwcrypto_verify(token: str, key: jwk.JWK, algorithm: str) -> dict[str, Any]:
    """Verify a compact JWS with jwcrypto, the algorithm pinned by the caller (not the header)."""
    signed = jws.JWS()
    signed.deserialize(token)
    signed.verify(key, alg=algorithm)
    payload: dict[str, Any] = json.loads(signed.payload)
    return payload


def _verify_api(http: httpx.Client, token: str) -> dict[str, Any]:
    response = http.post("/api/v1/verify", json={"credential": token})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jwcrypto_verifies_with_published_keys(
    server: Server, http: httpx.Client, algorithm: str
) -> None:
    issuer, credential = _issue(http, algorithm)
    did = issuer["issuer"]["id"]
    token = credential["jwt"]
    header = _b64url_json(token.split(".")[0])
    assert header["alg"] == algorithm
    assert header["typ"] == "JWT"
    kid = header["kid"]
    assert kid.startswith(f"{did}#")
    port_part = f"127.0.0.1%3A{server.port}"
    assert did == f"did:web:{port_part}:issuers:{issuer['issuer']['slug']}"

    # 1. the JWKS: pick the key by the header's kid
    jwks = http.get(f"/issuers/{issuer['issuer']['slug']}/jwks.json")
    assert jwks.status_code == 200, jwks.text
    keyset = jwk.JWKSet.from_json(jwks.text)
    key = keyset.get_key(kid)
    assert key is not None, f"no key {kid} in {jwks.text}"
    assert not key.has_private, "the JWKS publishes a private key"
    payload = _jwcrypto_verify(token, key, algorithm)
    assert payload["iss"] == did
    assert payload["jti"] == credential["url"]
    assert payload["id"] == credential["url"]
    assert payload["sub"] == payload["credentialSubject"]["id"]
    assert payload["issuer"]["id"] == did
    assert "OpenBadgeCredential" in payload["type"]

    # 2. the DID document, found by resolving the did:web itself
    doc_url = _did_web_url(did, urlsplit(server.base_url).scheme)
    assert doc_url == f"{server.base_url}/issuers/{issuer['issuer']['slug']}/did.json"
    doc_response = httpx.get(doc_url, timeout=30.0)
    assert doc_response.status_code == 200, doc_response.text
    doc = doc_response.json()
    assert doc["id"] == did
    methods = [m for m in doc["verificationMethod"] if m["id"] == kid]
    assert len(methods) == 1, doc
    assert methods[0]["controller"] == did
    assert kid in doc["assertionMethod"]
    did_key = jwk.JWK.from_json(json.dumps(methods[0]["publicKeyJwk"]))
    assert not did_key.has_private
    assert _jwcrypto_verify(token, did_key, algorithm) == payload
    assert did_key.thumbprint() == key.thumbprint()

    # 3. a forged payload under the same signature fails jwcrypto
    forged_payload = {**payload, "name": "Master Welder"}
    h, _p, s = token.split(".")
    with pytest.raises(JWException):
        _jwcrypto_verify(f"{h}.{_b64url(forged_payload)}.{s}", key, algorithm)

    # 4. the running server's own verifier agrees
    result = _verify_api(http, token)
    assert result["verified"] is True, result
    assert result["status"] == "valid"
    assert result["credential"]["issuer"]["id"] == did


def test_restart_keeps_credentials_verifiable(server: Server, http: httpx.Client) -> None:
    _issuer, credential = _issue(http, "ES256")
    # SIGTERM is a graceful shutdown (uvicorn re-raises the signal once it has finished)
    assert server.stop() in {0, -signal.SIGTERM}, server.log()
    assert "Application shutdown complete" in server.log()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/health", timeout=2.0)
    server.start()  # same port, database and keys directory

    result = _verify_api(http, credential["jwt"])
    assert result["verified"] is True, result
    page = http.get(f"/credentials/{credential['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Verified" in page.text
    # a credential issued after the restart signs with the same, reloaded key
    _issuer2, fresh = _issue(http, "ES256")
    assert _verify_api(http, fresh["jwt"])["verified"] is True


def _tampered(token: str) -> str:
    h, p, s = token.split(".")
    return f"{h}.{_b64url({**_b64url_json(p), 'name': 'Master Welder'})}.{s}"


def _assert_signature_failed(completed: subprocess.CompletedProcess[str]) -> None:
    assert completed.returncode == 1, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)  # a crash also exits 1: insist on a verdict
    assert result["verified"] is False
    signature = [c for c in result["checks"] if c["check"] == "signature"]
    assert signature, result
    assert signature[0]["result"] == "fail"


def test_cli_verify_exit_codes(server: Server, http: httpx.Client) -> None:
    _issuer, credential = _issue(http, "EdDSA")
    by_url = server.cli("verify", credential["url"])
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    assert "verified=true" in by_url.stdout

    token_file = server.workdir / "credential.jwt"
    token_file.write_text(credential["jwt"])
    by_file = server.cli("verify", "--json", str(token_file))
    assert by_file.returncode == 0, by_file.stdout + by_file.stderr
    result = json.loads(by_file.stdout)
    assert result["verified"] is True
    assert result["status"] == "valid"

    tampered_file = server.workdir / "tampered.jwt"
    tampered_file.write_text(_tampered(credential["jwt"]))
    _assert_signature_failed(server.cli("verify", "--json", str(tampered_file)))


def test_cli_verify_jwt_text(server: Server, http: httpx.Client) -> None:
    _issuer, credential = _issue(http, "ES256")
    by_jwt = server.cli("verify", "--json", credential["jwt"])
    assert by_jwt.returncode == 0, by_jwt.stdout + by_jwt.stderr
    assert json.loads(by_jwt.stdout)["verified"] is True
    by_stdin = server.cli_input(credential["jwt"], "verify", "--json", "-")
    assert by_stdin.returncode == 0, by_stdin.stdout + by_stdin.stderr
    _assert_signature_failed(server.cli("verify", "--json", _tampered(credential["jwt"])))
    _assert_signature_failed(
        server.cli_input(_tampered(credential["jwt"]), "verify", "--json", "-")
    )


def test_cli_issue_prints_a_verifiable_jwt(server: Server, http: httpx.Client) -> None:
    issuer, credential = _issue(http, "RS256")
    slug = issuer["issuer"]["slug"]
    issued = server.cli(
        "issue",
        "--issuer",
        slug,
        "--achievement",
        credential["achievement_id"],
        "--email",
        "ines@example.com",
        "--name",
        "Inês Duarte",
    )
    assert issued.returncode == 0, issued.stdout + issued.stderr
    printed = json.loads(issued.stdout)
    token = printed["jwt"]
    assert printed["url"] == f"{server.base_url}/credentials/{printed['id']}"

    keyset = jwk.JWKSet.from_json(http.get(f"/issuers/{slug}/jwks.json").text)
    kid = _b64url_json(token.split(".")[0])["kid"]
    payload = _jwcrypto_verify(token, keyset.get_key(kid), "RS256")
    assert payload["jti"] == printed["url"]
    assert "ines@example.com" not in json.dumps(payload)  # only salted and hashed

    result = _verify_api(http, token)
    assert result["verified"] is True, result
    public = http.get(printed["url"], headers={"Accept": "application/vc+jwt"})
    assert public.status_code == 200
    assert public.text.strip() == token
