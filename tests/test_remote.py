"""Foreign issuers' keys and status lists, fetched over real HTTPS from a server on loopback.

The server is a real TLS server on 127.0.0.1 with a certificate from a throwaway CA (trustme).
No test sends traffic anywhere but loopback: the refusal tests hand the fetcher a transport that
fails the test if a request ever reaches it, and the tests that talk to the server use a
transport that fails the test for any address other than 127.0.0.1 / ::1.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import base58
import httpx
import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from app.core.config import Settings
from app.core.fetch import address_problem
from app.core.keys import PrivateKey, public_jwk
from app.main import create_app
from app.status import bitstring
from app.verify.keys import KeyNotFound, KeyUnresolvable
from app.verify.remote import (
    STATUS_LIST_ACCEPT,
    Fetcher,
    RefusedAddress,
    RemoteFetchError,
    did_web_document_url,
    fetch_status_list,
    resolve_did_web,
    resolve_remote_key,
)
from conftest import BASE_URL, check, make_settings, ob_credential

LOOPBACK = {"127.0.0.1", "::1"}

# --- a real HTTPS server on loopback ----------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    content_length: bool = True  # False: the body ends when the connection closes


def json_route(document: Any, **kwargs: Any) -> Route:
    return Route(body=json.dumps(document).encode(), **kwargs)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        self.site.connections += 1
        # The handshake runs in the handler thread, so a client that gives up cannot stall accept.
        wrapped = self.site.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or refuse the certificate hang up; that is what the tests do."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        site = self.server.site
        with site.lock:
            site.hits[self.path] += 1
            site.requests.append((self.path, dict(self.headers.items())))
        route = site.routes.get(self.path)
        if route is None:
            route = Route(b"not found", status=404, content_type="text/plain")
        if route.delay:
            site.stopping.wait(route.delay)
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if route.content_length:
            self.send_header("Content-Length", str(len(route.body)))
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site:
    """An HTTPS site on 127.0.0.1 serving scripted routes and counting what it was asked."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.tls)
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.site = self
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def site(ca: trustme.CA) -> Iterator[Site]:
    with Site(ca.issue_cert("127.0.0.1", "localhost", "::1")) as s:
        yield s


class LoopbackOnly(httpx.BaseTransport):
    """A real transport that fails the test if a request is ever addressed beyond loopback."""

    def __init__(self, ca_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        self.inner = httpx.HTTPTransport(verify=context)
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            pytest.fail(f"a request left loopback: {request.url}")
        self.sent.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class MustNotConnect(httpx.BaseTransport):
    """The guard's proof: any request that gets this far fails the test."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pytest.fail(
            f"a connection was attempted to {request.url} (Host: {request.headers['host']})"
        )


def fetcher(
    transport: httpx.BaseTransport, *, allow_loopback: bool = True, **kwargs: Any
) -> Fetcher:
    values: dict[str, Any] = {"timeout": 2.0, "max_bytes": 64 * 1024, "cache_ttl": 0.0}
    values.update(kwargs)
    return Fetcher(allow_loopback=allow_loopback, transport=transport, **values)


@pytest.fixture
def loopback(ca_file: Path) -> Iterator[LoopbackOnly]:
    transport = LoopbackOnly(ca_file)
    yield transport
    transport.close()


@pytest.fixture
def local_fetcher(loopback: LoopbackOnly) -> Iterator[Fetcher]:
    f = fetcher(loopback)
    yield f
    f.close()


@pytest.fixture
def guarded_fetcher() -> Iterator[Fetcher]:
    f = fetcher(MustNotConnect(), allow_loopback=False)
    yield f
    f.close()


# --- a foreign issuer: did:web on the loopback site -----------------------------------------------


@dataclass
class ForeignIssuer:
    site: Site
    es256: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ed25519: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    unlisted: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def did(self) -> str:
        return f"did:web:127.0.0.1%3A{self.site.port}:issuers:acme"

    doc_path = "/issuers/acme/did.json"

    def did_document(self) -> dict[str, Any]:
        ed_raw = self.ed25519.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        multikey = "z" + base58.b58encode(b"\xed\x01" + ed_raw).decode()
        return {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/jwk/v1"],
            "id": self.did,
            "verificationMethod": [
                {
                    "id": f"{self.did}#key-1",
                    "type": "JsonWebKey",
                    "controller": self.did,
                    "publicKeyJwk": public_jwk(self.es256.public_key()),
                },
                {
                    "id": "#auth-only",
                    "type": "JsonWebKey",
                    "controller": self.did,
                    "publicKeyJwk": public_jwk(self.unlisted.public_key()),
                },
            ],
            "authentication": ["#auth-only"],
            "assertionMethod": [
                f"{self.did}#key-1",
                {
                    "id": "#key-2",
                    "type": "Multikey",
                    "controller": self.did,
                    "publicKeyMultibase": multikey,
                },
            ],
        }

    def serve(self) -> None:
        self.site.routes[self.doc_path] = json_route(
            self.did_document(), content_type="application/did+json"
        )
        jwks = {
            "keys": [
                {**public_jwk(self.unlisted.public_key()), "kid": "other", "use": "sig"},
                {**public_jwk(self.es256.public_key()), "kid": "k1", "use": "sig"},
                {
                    **public_jwk(self.ed25519.public_key()),
                    "kid": f"{self.site.origin}/jwks.json#full",
                },
            ]
        }
        self.site.routes["/jwks.json"] = json_route(jwks, content_type="application/jwk-set+json")
        self.site.routes["/key.json"] = json_route(public_jwk(self.es256.public_key()))


@pytest.fixture
def foreign(site: Site) -> ForeignIssuer:
    issuer = ForeignIssuer(site)
    issuer.serve()
    return issuer


def signed(issuer_id: str, key: PrivateKey, kid: str) -> str:
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    return jwt.encode(ob_credential(issuer_id), key, algorithm=alg, headers={"kid": kid})


# --- the app, fetching from loopback --------------------------------------------------------------

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(
    database_url: str, tmp_path: Path, ca_file: Path
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "fetch_allow_loopback": True,
            "fetch_ca_bundle": ca_file,
            "fetch_timeout": 1.0,
        }
        values.update(overrides)
        settings = make_settings(database_url, tmp_path / f"keys{len(clients)}", **values)
        client = TestClient(create_app(settings), base_url=BASE_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def verify(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post("/api/v1/verify", json={"credential": token})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_verified(result: dict[str, Any], issuer_detail: str = "belongs to the issuer") -> None:
    assert result["verified"] is True, result
    assert result["status"] == "valid"
    for name in ("format", "signature", "issuer", "validity_period", "schema"):
        assert check(result, name)["result"] == "pass", (name, result)
    assert issuer_detail in check(result, "issuer")["detail"]


def assert_unknown(result: dict[str, Any]) -> None:
    assert result["verified"] is False, result
    assert result["status"] == "unknown"
    assert check(result, "signature")["result"] == "error", result


# --- acceptance: a foreign did:web issuer verifies -------------------------------------------


def test_foreign_did_web_issuer_verifies(make_client: MakeClient, foreign: ForeignIssuer) -> None:
    client = make_client()
    result = verify(client, signed(foreign.did, foreign.es256, f"{foreign.did}#key-1"))
    assert_verified(result)
    assert "the DID document at https://127.0.0.1:" in check(result, "signature")["detail"]
    # the page and CLI use the same service; the credential's summary names the foreign issuer
    assert result["credential"]["issuer"]["id"] == foreign.did


def test_foreign_relative_kid_with_multikey_verifies(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    """A relative kid ('#key-2') against an embedded assertionMethod with publicKeyMultibase."""
    result = verify(make_client(), signed(foreign.did, foreign.ed25519, "#key-2"))
    assert_verified(result)


def test_foreign_unknown_fragment_fails_signature(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    result = verify(make_client(), signed(foreign.did, foreign.es256, f"{foreign.did}#nope"))
    assert result["verified"] is False
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] == "fail"
    assert "no verification method" in check(result, "signature")["detail"]


def test_foreign_key_not_in_assertion_method_fails(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    """A key the DID lists only for authentication may not sign credentials."""
    token = signed(foreign.did, foreign.unlisted, f"{foreign.did}#auth-only")
    result = verify(make_client(), token)
    assert result["status"] == "invalid"
    assert "not an assertionMethod" in check(result, "signature")["detail"]


def test_foreign_key_of_another_did_signing_fails(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    """The right kid, the wrong private key: the fetched key does not verify the signature."""
    token = signed(foreign.did, foreign.unlisted, f"{foreign.did}#key-1")
    result = verify(make_client(), token)
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] == "fail"


def test_foreign_did_document_of_another_did_fails(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    document = foreign.did_document()
    document["id"] = "did:web:elsewhere.example"
    foreign.site.routes[foreign.doc_path] = json_route(document)
    result = verify(make_client(), signed(foreign.did, foreign.es256, f"{foreign.did}#key-1"))
    assert result["status"] == "invalid"
    assert "not of did:web:127.0.0.1" in check(result, "signature")["detail"]


def test_foreign_did_web_key_of_another_issuer_fails_issuer(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    """A did:web key, but the credential claims a different issuer: the binding fails, and the
    key is not even fetched (it could not be the issuer's whatever its document says)."""
    token = signed("did:web:university.example", foreign.es256, f"{foreign.did}#key-1")
    result = verify(make_client(), token)
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] == "skipped"
    assert check(result, "issuer")["result"] == "fail"
    assert foreign.site.connections == 0


@pytest.mark.parametrize(
    ("kid_path", "key_name"),
    [("/jwks.json#k1", "es256"), ("/jwks.json#full", "ed25519"), ("/key.json", "es256")],
)
def test_https_kid_verifies_and_binds_same_origin_issuer(
    make_client: MakeClient, foreign: ForeignIssuer, kid_path: str, key_name: str
) -> None:
    """A JWKS picked by fragment or by full URL, or a single JWK; an issuer of the same origin."""
    kid = foreign.site.origin + kid_path
    issuer = f"{foreign.site.origin}/issuers/acme"
    result = verify(make_client(), signed(issuer, getattr(foreign, key_name), kid))
    assert_verified(result)


def test_https_kid_of_another_origin_does_not_prove_the_issuer(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    kid = f"{foreign.site.origin}/jwks.json#k1"
    result = verify(make_client(), signed("https://acme.example/issuer", foreign.es256, kid))
    assert result["status"] == "invalid"
    assert check(result, "issuer")["result"] == "fail"
    assert "does not speak for the issuer" in check(result, "issuer")["detail"]
    assert foreign.site.connections == 0


def test_https_kid_not_in_jwks_fails(make_client: MakeClient, foreign: ForeignIssuer) -> None:
    kid = f"{foreign.site.origin}/jwks.json#missing"
    result = verify(make_client(), signed(foreign.site.origin, foreign.es256, kid))
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] == "fail"


# --- acceptance: unreachable, slow, broken or oversize documents are `unknown` ----------------


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(b"oops", status=500, content_type="text/plain"), id="http-500"),
        pytest.param(Route(b"{}", delay=3.0), id="timeout"),
        pytest.param(Route(b"\x00\xffnot json at all{", content_type="text/html"), id="garbage"),
        pytest.param(Route(b"[1, 2, 3]"), id="json-not-an-object"),
        pytest.param(Route(b" " * (80 * 1024) + b"{}"), id="oversize"),
        pytest.param(Route(b" " * (80 * 1024) + b"{}", content_length=False), id="oversize-stream"),
        pytest.param(Route(b"{}", status=404), id="not-found"),
    ],
)
def test_foreign_did_document_unavailable_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer, route: Route
) -> None:
    foreign.site.routes[foreign.doc_path] = route
    client = make_client(fetch_timeout=0.3, fetch_max_bytes=64 * 1024)
    started = time.monotonic()
    result = verify(client, signed(foreign.did, foreign.es256, f"{foreign.did}#key-1"))
    assert time.monotonic() - started < 2.5
    assert_unknown(result)
    assert foreign.site.hits[foreign.doc_path] == 1


def test_foreign_https_kid_unavailable_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    foreign.site.routes["/jwks.json"] = Route(b"down", status=503, content_type="text/plain")
    kid = f"{foreign.site.origin}/jwks.json#k1"
    assert_unknown(verify(make_client(), signed(foreign.site.origin, foreign.es256, kid)))


def test_untrusted_certificate_is_unknown(
    database_url: str, tmp_path: Path, foreign: ForeignIssuer
) -> None:
    """Without our test CA the server's certificate does not verify: nothing is trusted."""
    settings = make_settings(database_url, tmp_path / "keys", fetch_allow_loopback=True)
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        result = verify(client, signed(foreign.did, foreign.es256, f"{foreign.did}#key-1"))
    assert_unknown(result)
    assert "CERTIFICATE_VERIFY_FAILED" in check(result, "signature")["detail"]
    assert foreign.site.hits[foreign.doc_path] == 0  # the handshake failed; no request was read


# --- cache ----------------------------------------------------------------------------------


def test_cache_serves_repeated_verifications_and_expires(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    # Long enough that two verifications fit in it on a loaded machine (0.5 s did not, at load 5).
    ttl = 2.0
    client = make_client(fetch_cache_ttl=ttl)
    token = signed(foreign.did, foreign.es256, f"{foreign.did}#key-1")
    assert_verified(verify(client, token))
    fetched = time.monotonic()  # the entry is stored by now: it expires within ttl from here
    assert_verified(verify(client, token))
    assert foreign.site.hits[foreign.doc_path] == 1
    time.sleep(max(0.0, fetched + ttl + 0.1 - time.monotonic()))
    assert_verified(verify(client, token))
    assert foreign.site.hits[foreign.doc_path] == 2


def test_failures_are_not_cached(loopback: LoopbackOnly, site: Site) -> None:
    site.routes["/x.json"] = Route(b"no", status=500)
    cached = fetcher(loopback, cache_ttl=60.0)
    with pytest.raises(RemoteFetchError, match="HTTP 500"):
        cached.get_json(f"{site.origin}/x.json")
    site.routes["/x.json"] = json_route({"ok": True})
    assert cached.get_json(f"{site.origin}/x.json") == {"ok": True}
    assert cached.get_json(f"{site.origin}/x.json") == {"ok": True}
    assert site.hits["/x.json"] == 2


# --- acceptance: SSRF refusals happen before any connection ------------------------------------

REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "api.localhost",
    "127.1",  # a name getaddrinfo resolves to 127.0.0.1: refused by its address
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6 loopback
    "[::ffff:10.0.0.1]",
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 - a host the guard must refuse, never bound
    "224.0.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "[::]",
    "[2002:a00:1::]",  # 6to4 around 10.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 around 169.254.169.254
    "metadata.google.internal",
    "printer.local",
    "intranet",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_https_kid_naming_a_private_host_is_refused_before_connecting(
    guarded_fetcher: Fetcher, host: str
) -> None:
    kid = f"https://{host}:8443/keys.json#k1"
    with pytest.raises(KeyUnresolvable, match="refused"):
        resolve_remote_key(guarded_fetcher, kid, "https://acme.example")


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_did_web_naming_a_private_host_is_refused_before_connecting(
    guarded_fetcher: Fetcher, host: str
) -> None:
    did = "did:web:" + host.replace("[", "%5B").replace("]", "%5D").replace(":", "%3A")
    did += "%3A8443:issuers:acme"
    with pytest.raises(KeyUnresolvable, match="refused"):
        resolve_remote_key(guarded_fetcher, f"{did}#key-1", did)


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost./keys.json",
        "https://2130706433/keys.json",
        "http://127.0.0.1/keys.json",
        "http://acme.example/keys.json",
        "https://user:secret@127.0.0.1/keys.json",
        "ftp://127.0.0.1/keys.json",
        "https:///keys.json",
    ],
)
def test_non_https_or_userinfo_urls_are_refused(guarded_fetcher: Fetcher, url: str) -> None:
    with pytest.raises(RefusedAddress):
        guarded_fetcher.get(url, accept="application/json")


def test_loopback_refused_through_the_api_opens_no_connection(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    """The app's own fetcher (loopback not allowed, the default) never touches the live server."""
    client = make_client(fetch_allow_loopback=False)
    result = verify(client, signed(foreign.did, foreign.es256, f"{foreign.did}#key-1"))
    assert_unknown(result)
    assert "loopback" in check(result, "signature")["detail"]
    origin = f"https://localhost:{foreign.site.port}"
    assert_unknown(verify(client, signed(origin, foreign.es256, f"{origin}/jwks.json#k1")))
    assert foreign.site.connections == 0


def test_redirect_to_another_host_is_refused(
    loopback: LoopbackOnly, local_fetcher: Fetcher, site: Site
) -> None:
    site.routes["/moved"] = Route(
        status=302, headers={"Location": f"https://localhost:{site.port}/key.json"}
    )
    with pytest.raises(RefusedAddress, match="another host"):
        local_fetcher.get_json(f"{site.origin}/moved")
    assert site.hits == Counter({"/moved": 1})
    assert len(loopback.sent) == 1


@pytest.mark.parametrize(
    "location",
    ["https://10.0.0.1/key.json", "https://[fe80::1]/key.json", "https://169.254.169.254/"],
)
def test_redirect_to_a_private_address_is_refused(
    loopback: LoopbackOnly, local_fetcher: Fetcher, site: Site, location: str
) -> None:
    site.routes["/moved"] = Route(status=301, headers={"Location": location})
    with pytest.raises(RefusedAddress, match="refused"):
        local_fetcher.get_json(f"{site.origin}/moved")
    assert [r.url.host for r in loopback.sent] == ["127.0.0.1"]


def test_redirect_to_http_is_refused(local_fetcher: Fetcher, site: Site) -> None:
    site.routes["/moved"] = Route(
        status=307, headers={"Location": f"http://127.0.0.1:{site.port}/key.json"}
    )
    with pytest.raises(RefusedAddress, match="only https"):
        local_fetcher.get_json(f"{site.origin}/moved")


def test_same_origin_redirects_are_followed_up_to_three(local_fetcher: Fetcher, site: Site) -> None:
    site.routes["/a"] = Route(status=302, headers={"Location": "/b"})
    site.routes["/b"] = Route(status=308, headers={"Location": f"{site.origin}/c"})
    site.routes["/c"] = Route(status=303, headers={"Location": "/d"})
    site.routes["/d"] = json_route({"here": True})
    assert local_fetcher.get_json(f"{site.origin}/a") == {"here": True}
    site.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(RemoteFetchError, match="redirects more than 3 times"):
        local_fetcher.get_json(f"{site.origin}/loop")
    assert site.hits["/loop"] == 4


# --- pinning: the connection goes to the validated IP, TLS checks the hostname ---------------


def test_connection_is_pinned_to_the_resolved_address_and_tls_checks_the_name(
    ca: trustme.CA, loopback: LoopbackOnly, local_fetcher: Fetcher
) -> None:
    """A certificate for `localhost` only: fetching by name works although the request is
    addressed to the IP (so the name, not the IP, is what TLS verified); by IP it fails."""
    with Site(ca.issue_cert("localhost")) as named:
        named.routes["/k.json"] = json_route({"kty": "none"})
        assert local_fetcher.get_json(f"https://localhost:{named.port}/k.json") == {"kty": "none"}
        request = loopback.sent[-1]
        assert request.url.host in LOOPBACK
        assert request.headers["host"] == f"localhost:{named.port}"
        assert request.extensions["sni_hostname"] == "localhost"
        assert named.requests[-1][1]["Host"] == f"localhost:{named.port}"
        with pytest.raises(RemoteFetchError, match="CERTIFICATE_VERIFY_FAILED"):
            local_fetcher.get_json(f"https://127.0.0.1:{named.port}/k.json")


def test_compressed_bodies_are_refused(local_fetcher: Fetcher, site: Site) -> None:
    site.routes["/z"] = Route(b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    with pytest.raises(RemoteFetchError, match="gzip-encoded"):
        local_fetcher.get(f"{site.origin}/z", accept="application/json")
    assert site.requests[-1][1]["Accept-Encoding"] == "identity"


# --- did:web resolution rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ("did:web:%5B%3A%3A1%5D%3A8443", "https://[::1]:8443/.well-known/did.json"),
    ],
)
def test_did_web_document_url(did: str, url: str) -> None:
    assert did_web_document_url(did) == url


@pytest.mark.parametrize(
    "did",
    [
        "did:web:",
        "did:web:evil.example%2Fpath",
        "did:web:a@b.example",
        "did:web:example.com:..:secret",
        "did:web:example.com::x",
        "did:key:z6Mk",
    ],
)
def test_malformed_did_web_is_refused(did: str, guarded_fetcher: Fetcher) -> None:
    with pytest.raises(ValueError, match="did"):
        did_web_document_url(did)
    if did.startswith("did:web:"):
        with pytest.raises(KeyNotFound):
            resolve_remote_key(guarded_fetcher, f"{did}#k", did)


def test_resolve_did_web_returns_the_document(
    local_fetcher: Fetcher, foreign: ForeignIssuer
) -> None:
    document = resolve_did_web(local_fetcher, foreign.did + "#key-1")
    assert document["id"] == foreign.did
    resolved = resolve_remote_key(local_fetcher, f"{foreign.did}#key-1", foreign.did)
    assert resolved.controller == foreign.did


def test_bare_did_kid_uses_the_single_assertion_key(
    local_fetcher: Fetcher, foreign: ForeignIssuer
) -> None:
    """Two assertion methods: a kid without fragment is ambiguous; with one, it names that one."""
    with pytest.raises(KeyNotFound, match="no #fragment"):
        resolve_remote_key(local_fetcher, foreign.did, foreign.did)
    document = foreign.did_document()
    document["assertionMethod"] = ["#key-1"]
    foreign.site.routes[foreign.doc_path] = json_route(document)
    assert resolve_remote_key(local_fetcher, foreign.did, foreign.did).controller == foreign.did


def test_published_private_key_is_refused(local_fetcher: Fetcher, site: Site) -> None:
    jwk = {**public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()), "d": "AAAA"}
    site.routes["/leaky.json"] = json_route(jwk)
    with pytest.raises(KeyNotFound, match="private part"):
        resolve_remote_key(local_fetcher, f"{site.origin}/leaky.json", site.origin)


# --- status lists -------------------------------------------------------------------------------


def test_fetch_status_list_returns_a_jwt_or_json(local_fetcher: Fetcher, site: Site) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({"type": ["BitstringStatusListCredential"]}, key, algorithm="ES256")
    site.routes["/status/1"] = Route(token.encode() + b"\n", content_type="application/vc+jwt")
    site.routes["/status/2"] = json_route({"type": ["BitstringStatusListCredential"]})
    assert fetch_status_list(local_fetcher, f"{site.origin}/status/1") == token
    assert site.requests[-1][1]["Accept"] == STATUS_LIST_ACCEPT
    assert fetch_status_list(local_fetcher, f"{site.origin}/status/2") == {
        "type": ["BitstringStatusListCredential"]
    }


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(b"x", status=500), id="http-500"),
        pytest.param(Route(b"<html>", content_type="text/html"), id="garbage"),
        pytest.param(Route(b"not.a jwt", content_type="application/vc+jwt"), id="bad-jwt"),
        pytest.param(Route(b'"a string"'), id="json-not-an-object"),
        pytest.param(Route(b"\xff\xfe"), id="not-text"),
        pytest.param(Route(b"{}", delay=3.0), id="timeout"),
        pytest.param(Route(b"{" + b" " * (70 * 1024) + b"}"), id="oversize"),
    ],
)
def test_fetch_status_list_failures_raise(loopback: LoopbackOnly, site: Site, route: Route) -> None:
    site.routes["/status/1"] = route
    with pytest.raises(RemoteFetchError):
        fetch_status_list(fetcher(loopback, timeout=0.3), f"{site.origin}/status/1")


def test_fetch_status_list_from_a_private_address_is_refused(guarded_fetcher: Fetcher) -> None:
    with pytest.raises(RefusedAddress):
        fetch_status_list(guarded_fetcher, "https://10.1.2.3/status/1")


# --- settings -----------------------------------------------------------------------------------


def test_production_refuses_loopback_fetches(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MICROCRED_FETCH_ALLOW_LOOPBACK"):
        Settings(
            base_url="https://badges.example.org",
            database_url=f"sqlite:///{tmp_path}/db.sqlite",
            admin_token=SecretStr("x" * 32),
            keys_passphrase=SecretStr("a long passphrase"),
            env="production",
            fetch_allow_loopback=True,
        )


def test_fetcher_refuses_to_skip_certificate_checks() -> None:
    with pytest.raises(ValueError, match="cannot be turned off"):
        Fetcher(allow_loopback=False, timeout=1, max_bytes=1024, cache_ttl=0, verify=False)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "::ffff:8.8.8.8", "2606:4700::1111", "2002:808:808::"]
)
def test_public_addresses_pass_the_guard(address: str) -> None:
    """The guard refuses what is not public, not everything: these are judged, never contacted."""
    assert address_problem(ipaddress.ip_address(address), allow_loopback=False) is None


# --- foreign status lists (issue 3, line 5): read, verified, decoded; never "valid" unread ----

LIST_PATH = "/status/acme/revocation/1"
INDEX = 4242


def _entry(foreign: ForeignIssuer, index: int = INDEX) -> dict[str, Any]:
    url = foreign.site.origin + LIST_PATH
    return {
        "id": f"{url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": str(index),
        "statusListCredential": url,
    }


def _credential(foreign: ForeignIssuer) -> str:
    claims = ob_credential(foreign.did, credentialStatus=_entry(foreign))
    return jwt.encode(
        claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
    )


def _list_token(
    foreign: ForeignIssuer,
    revoked: set[int],
    *,
    issuer: str | None = None,
    purpose: str = "revocation",
) -> str:
    url = foreign.site.origin + LIST_PATH
    who = issuer or foreign.did
    payload = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": who,
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": bitstring.encode(revoked),
        },
        "iss": who,
        "jti": url,
    }
    return jwt.encode(
        payload, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
    )


def _serve_list(foreign: ForeignIssuer, body: str | bytes, **route: Any) -> None:
    data = body.encode() if isinstance(body, str) else body
    foreign.site.routes[LIST_PATH] = Route(
        body=data, content_type=route.pop("content_type", "application/vc+jwt"), **route
    )


def test_foreign_list_not_revoked_is_valid(make_client: MakeClient, foreign: ForeignIssuer) -> None:
    _serve_list(foreign, _list_token(foreign, {1, 2, 3}))
    result = verify(make_client(), _credential(foreign))
    assert result["status"] == "valid", result
    assert check(result, "status")["result"] == "pass"


def test_foreign_list_with_the_bit_set_is_revoked(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    _serve_list(foreign, _list_token(foreign, {INDEX}))
    result = verify(make_client(), _credential(foreign))
    assert result["status"] == "revoked", result
    assert check(result, "status")["result"] == "fail"


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(b"oops", status=500, content_type="text/plain"), id="500"),
        pytest.param(Route(b"not a list at all", content_type="text/plain"), id="garbage"),
        pytest.param(Route(b'{"type": ["VerifiableCredential"]}'), id="json-not-a-list"),
        pytest.param(Route(b"x", delay=2.0, content_type="text/plain"), id="timeout"),
    ],
)
def test_unreadable_foreign_list_is_unknown_never_valid(
    make_client: MakeClient, foreign: ForeignIssuer, route: Route
) -> None:
    foreign.site.routes[LIST_PATH] = route
    result = verify(make_client(fetch_timeout=0.3), _credential(foreign))
    assert result["verified"] is False
    assert result["status"] == "unknown", result
    assert check(result, "status")["result"] == "error"
    assert check(result, "signature")["result"] == "pass"


def test_foreign_list_that_does_not_decode_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    token = _list_token(foreign, set())
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["credentialSubject"]["encodedList"] = "uNOT-GZIP"
    _serve_list(
        foreign,
        jwt.encode(
            claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
        ),
    )
    result = verify(make_client(), _credential(foreign))
    assert result["status"] == "unknown", result
    assert "could not be used" in check(result, "status")["detail"]


def test_foreign_list_signed_by_someone_else_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    # Tampered: a valid list token with its payload swapped keeps the header but not the signature.
    good = _list_token(foreign, set())
    forged_payload = jwt.utils.base64url_encode(
        json.dumps(
            jwt.decode(_list_token(foreign, {INDEX}), options={"verify_signature": False})
        ).encode()
    ).decode()
    header, _payload, signature = good.split(".")
    _serve_list(foreign, f"{header}.{forged_payload}.{signature}")
    result = verify(make_client(), _credential(foreign))
    assert result["status"] == "unknown", result
    assert "cannot be trusted" in check(result, "status")["detail"]


def test_foreign_list_of_another_issuer_or_purpose_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    _serve_list(foreign, _list_token(foreign, set(), purpose="suspension"))
    client = make_client()
    assert verify(client, _credential(foreign))["status"] == "unknown"
