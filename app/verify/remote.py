"""What a verification must fetch from foreign issuers: did:web documents, HTTPS keys, status lists.

Every request goes through the guarded `Fetcher` (app/core/fetch.py: https only, public
addresses only, pinned to the address it validated, same-origin redirects, timeouts, a size cap,
a TTL cache). This module turns what comes back into keys and status lists, and sorts failures
into the two kinds a verification reports differently:

- the resource could not be fetched or read (`RemoteFetchError`, the key: `KeyUnresolvable`):
  the check is `error` and the status `unknown`;
- the resource was read and does not hold the key (`KeyNotFound`): the check `fail`s.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import base58
import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519

from app.core import text as client_text
from app.core.fetch import Fetcher, RefusedAddress, RemoteFetchError
from app.core.keys import PublicKey, UnsupportedKey, UnusableKey, public_key_from_jwk
from app.verify.keys import (
    KeyKind,
    KeyNotFound,
    KeyUnresolvable,
    ResolvedKey,
    did_of,
    multikey_public_key,
)

__all__ = [
    "STATUS_LIST_ACCEPT",
    "Fetcher",
    "RefusedAddress",
    "RemoteFetchError",
    "WrongDocument",
    "did_web_document_url",
    "fetch_status_list",
    "resolve_did_web",
    "resolve_remote_key",
]

STATUS_LIST_ACCEPT = "application/vc+jwt, application/jwt;q=0.9, application/vc+ld+json;q=0.8, application/json;q=0.5"
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# The did:web host part once its port colon is percent-decoded: a DNS name or IP, and a port.
_DID_WEB_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$"
)
# A path segment: RFC 3986 pchar without ':' (the did:web separator) and without '/'.
_DID_WEB_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=@%-]+$")


class WrongDocument(RemoteFetchError):
    """The document was read, and it is not the DID document of the DID that named it."""


def did_web_document_url(did: str) -> str:
    """The URL of a did:web DID document (did:web method spec, "Read (Resolve)").

    `did:web:example.com` → `https://example.com/.well-known/did.json`;
    `did:web:example.com%3A8443:issuers:acme` → `https://example.com:8443/issuers/acme/did.json`.
    Raises ValueError for an identifier that is not a well-formed did:web.
    """
    if not did.startswith("did:web:"):
        raise ValueError(f"{did} is not a did:web identifier")
    host_part, *segments = did[len("did:web:") :].split(":")
    host = unquote(host_part)
    if not _DID_WEB_HOST.match(host):
        raise ValueError(f"{did} does not name a valid host")
    for segment in segments:
        if not _DID_WEB_SEGMENT.match(segment) or segment in {".", ".."}:
            raise ValueError(f"{did} has an invalid path segment {segment!r}")
    path = "/".join(segments) + "/did.json" if segments else ".well-known/did.json"
    return f"https://{host}/{path}"


def resolve_did_web(fetcher: Fetcher, did: str) -> dict[str, Any]:
    """Fetch the DID document of a did:web and check that it is that DID's (`id` equals it).

    Raises ValueError (malformed did:web), WrongDocument (fetched, but another DID's or not a
    DID document), RemoteFetchError (could not be fetched or parsed).
    """
    did = did_of(did).split("?", 1)[0]
    url = did_web_document_url(did)
    document = fetcher.get_json(url)
    if not isinstance(document, dict):
        raise RemoteFetchError(f"{url} is not a DID document (not a JSON object)")
    if document.get("id") != did:
        raise WrongDocument(
            f"the document at {url} is the DID document of {document.get('id')!r}, not of {did}"
        )
    return document


def resolve_remote_key(fetcher: Fetcher, kid: str, issuer_id: str) -> ResolvedKey:
    """The public key named by a did:web or HTTPS `kid`, fetched from its publisher.

    did:web: the verification method with that id in the DID document, which must also be one
    of its `assertionMethod`s; the key belongs to the DID. HTTPS: a single JWK or a JWKS at the
    URL (picked by `kid`, the fragment or the full URL); the key belongs to the issuer only when
    the issuer id is an https URL of the same origin.
    Raises KeyNotFound when the document was read but has no such key, KeyUnresolvable when it
    could not be fetched or read.
    """
    if kid.startswith("#") and issuer_id.startswith("did:web:"):
        kid = did_of(issuer_id) + kid
    if kid.startswith("did:web:"):
        return _did_web_key(fetcher, kid)
    if kid.startswith("https://"):
        return _https_key(fetcher, kid, issuer_id)
    raise KeyUnresolvable(f"the key {kid} is neither a did:web nor an https key id")


def fetch_status_list(fetcher: Fetcher, url: str) -> str | dict[str, Any]:
    """A status list credential: the compact JWT when the body is one, else the JSON object.

    Raises RemoteFetchError when it cannot be fetched or is neither.
    """
    media_type, body = fetcher.get(url, accept=STATUS_LIST_ACCEPT)
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise RemoteFetchError(f"the status list at {url} is not text") from exc
    if _COMPACT_JWS.match(text):
        return text
    if media_type in {"application/vc+jwt", "application/jwt"}:
        raise RemoteFetchError(f"the status list at {url} is not a compact JWT")
    try:
        document = client_text.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteFetchError(f"the status list at {url} is neither a JWT nor JSON") from exc
    if not isinstance(document, dict):
        raise RemoteFetchError(f"the status list at {url} is not a JSON object")
    return document


# --- did:web --------------------------------------------------------------------------------------


def _did_web_key(fetcher: Fetcher, kid: str) -> ResolvedKey:
    did, _, fragment = kid.partition("#")
    try:
        url = did_web_document_url(did)
        document = resolve_did_web(fetcher, did)
    except ValueError as exc:
        raise KeyNotFound(str(exc)) from exc
    except WrongDocument as exc:
        raise KeyNotFound(str(exc)) from exc
    except RemoteFetchError as exc:
        raise KeyUnresolvable(f"the DID document of {did} could not be read: {exc}") from exc

    wanted = kid if fragment else None
    return ResolvedKey(
        _assertion_key(document, did, wanted, what=did),
        did,
        f"the DID document at {url}",
        KeyKind.did_web,
    )


def _assertion_key(
    document: dict[str, Any], base: str, wanted: str | None, *, what: str
) -> PublicKey:
    """The key of verification method `wanted` (None: the one assertion method) of a DID or
    controller document whose id is `base`, which must list it under `assertionMethod`."""
    methods: dict[str, dict[str, Any]] = {}
    assertion: list[str] = []
    for method in _as_list(document.get("verificationMethod")):
        if isinstance(method, dict) and isinstance(method.get("id"), str):
            methods.setdefault(_absolute(base, method["id"]), method)
    for entry in _as_list(document.get("assertionMethod")):
        if isinstance(entry, str):
            assertion.append(_absolute(base, entry))
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str):
            ident = _absolute(base, entry["id"])
            assertion.append(ident)
            methods.setdefault(ident, entry)  # an embedded verification method

    if wanted is None:
        if len(set(assertion)) != 1:
            raise KeyNotFound(f"{base} names no key (no #fragment), and {what} has several or none")
        wanted = assertion[0]  # a bare DID as kid: its one assertion key
    method = methods.get(wanted)
    if method is None:
        raise KeyNotFound(f"the document of {what} has no verification method {wanted}")
    if wanted not in assertion:
        raise KeyNotFound(
            f"{wanted} is not an assertionMethod of {what}: it is not allowed to sign credentials"
        )
    controller = method.get("controller")
    if controller is not None and controller != base:
        raise KeyNotFound(f"{wanted} is controlled by {controller!r}, not by {base}")
    return _method_key(method, wanted)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _absolute(did: str, ref: str) -> str:
    return did + ref if ref.startswith("#") else ref


def _method_key(method: dict[str, Any], ident: str) -> PublicKey:
    jwk = method.get("publicKeyJwk")
    if jwk is not None:
        return _jwk_key(jwk, ident)
    multibase = method.get("publicKeyMultibase")
    if isinstance(multibase, str):
        return multikey_public_key(multibase, f"the publicKeyMultibase of {ident}")
    legacy = method.get("publicKeyBase58")
    if isinstance(legacy, str) and method.get("type") == "Ed25519VerificationKey2018":
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(base58.b58decode(legacy))
        except ValueError as exc:
            raise KeyNotFound(f"the publicKeyBase58 of {ident} is malformed: {exc}") from exc
    raise KeyNotFound(
        f"{ident} holds no key this verifier reads (publicKeyJwk, publicKeyMultibase)"
    )


def _jwk_key(jwk: Any, ident: str) -> PublicKey:
    if isinstance(jwk, dict):
        if "d" in jwk:
            raise KeyNotFound(f"{ident} is published with its private part: it cannot be trusted")
        if jwk.get("use", "sig") != "sig":
            raise KeyNotFound(f"{ident} is published for {jwk.get('use')!r}, not for signatures")
    try:
        return public_key_from_jwk(jwk)
    except UnsupportedKey as exc:
        raise KeyUnresolvable(f"{ident} is a key this verifier does not support: {exc}") from exc
    except UnusableKey as exc:
        raise KeyNotFound(f"{ident} is not a usable public key: {exc}") from exc


# --- HTTPS kid ------------------------------------------------------------------------------------


def _https_key(fetcher: Fetcher, kid: str, issuer_id: str) -> ResolvedKey:
    url, _, fragment = kid.partition("#")
    try:
        document = fetcher.get_json(url)
    except RemoteFetchError as exc:
        raise KeyUnresolvable(f"the key {kid} could not be fetched: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        keys = [k for k in document["keys"] if isinstance(k, dict)]
        names = {kid, fragment} if fragment else {kid}
        matches = [k for k in keys if k.get("kid") in names]
        if not matches and not fragment and len(keys) == 1:
            matches = keys  # the URL names a set of one key
        if not matches:
            raise KeyNotFound(f"the JWKS at {url} has no key {fragment or kid}")
        if len(matches) > 1:
            raise KeyNotFound(f"the JWKS at {url} has several keys {fragment or kid}")
        jwk = matches[0]
    elif isinstance(document, dict) and (
        "verificationMethod" in document or "assertionMethod" in document
    ):
        # A controller document (W3C Controlled Identifiers; what Data Integrity proofs name).
        if document.get("id") != url:
            raise KeyNotFound(f"the document at {url} is the document of {document.get('id')!r}")
        controller = issuer_id if _same_https_origin(issuer_id, kid) else None
        key = _assertion_key(document, url, kid if fragment else None, what=url)
        return ResolvedKey(key, controller, f"the controller document at {url}", KeyKind.https)
    elif isinstance(document, dict) and "kty" in document:
        if fragment and document.get("kid") not in {None, fragment, kid}:
            raise KeyNotFound(f"the JWK at {url} is {document.get('kid')!r}, not {fragment}")
        jwk = document
    else:
        raise KeyUnresolvable(f"{url} holds neither a JWK nor a JWKS")
    controller = issuer_id if _same_https_origin(issuer_id, kid) else None
    return ResolvedKey(_jwk_key(jwk, kid), controller, f"the key published at {url}", KeyKind.https)


def _same_https_origin(a: str, b: str) -> bool:
    try:
        x, y = httpx.URL(a), httpx.URL(b)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return x.scheme == y.scheme == "https" and bool(x.host) and (x.host, x.port) == (y.host, y.port)
