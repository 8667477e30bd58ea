"""Finding the public key a credential was signed with, and whose key it is.

Resolution never trusts the token alone: our own issuers' keys come from the database, did:key and
did:jwk keys are derived from the identifier itself, and any other key is bound to the issuer or
reported as something we could not check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.core import multikey
from app.core import text as client_text
from app.core.keys import (
    PublicKey,
    UnsupportedKey,
    UnusableKey,
    b64url_decode,
    public_key_from_jwk,
)


class KeyNotFound(Exception):
    """The key named by the token does not exist where it should (a `fail`)."""


class KeyCompromised(KeyNotFound):
    """The key exists but its owner reported it compromised (a `fail`, naming the key)."""


class KeyUnresolvable(Exception):
    """The key could not be obtained or checked here (an `error`: status unknown)."""


class KeyKind(StrEnum):
    """Where a key came from: what decides who, if anyone, stands behind it."""

    register = "register"  # this service's key register (our own issuers)
    did_web = "did_web"  # a did:web DID document, served by the DID's domain
    https = "https"  # a JWK/JWKS at an https URL, served by that origin
    did_key = "did_key"  # derived from a did:key identifier: anyone can mint one
    did_jwk = "did_jwk"  # derived from a did:jwk identifier: likewise
    embedded = "embedded"  # a `jwk` the token carries about itself
    trusted = "trusted"  # a key the caller supplied as trusted (CLI --jwks, test vectors)


@dataclass(frozen=True)
class ResolvedKey:
    key: PublicKey
    controller: str | None  # who the key belongs to, when known
    source: str  # how we found it, for the check's detail
    kind: KeyKind = KeyKind.embedded


@dataclass(frozen=True)
class TrustedKey:
    """A verification method the caller vouches for (a local trust store, test vectors)."""

    jwk: dict[str, Any]
    controller: str | None = None


def did_key_public_key(did: str) -> PublicKey:
    """The public key inside a did:key identifier (Ed25519, P-256, P-384).

    A DID URL's fragment must be the key itself (`did:key:z6Mk…#z6Mk…`), as the did:key method
    writes the one verification method it has: any other fragment names no key."""
    ident, _, fragment = did.partition("#")
    if not ident.startswith("did:key:z"):
        raise KeyNotFound("did:key identifiers must be multibase base58btc ('z…')")
    if fragment and fragment != ident[len("did:key:") :]:
        raise KeyNotFound(f"{ident} has one verification method, #{ident[len('did:key:') :]}")
    return multikey_public_key(ident[len("did:key:") :], "the did:key")


def multikey_public_key(multibase: str, what: str = "the publicKeyMultibase") -> PublicKey:
    """A Multikey public key ('z' + base58btc(multicodec prefix || key)): Ed25519, P-256, P-384."""
    try:
        return multikey.decode_public_key(multibase)
    except multikey.UnsupportedMultikey as exc:
        raise KeyUnresolvable(f"{what} {exc}") from exc
    except multikey.MalformedMultikey as exc:
        raise KeyNotFound(f"{what} {exc}") from exc


def did_jwk_public_key(did: str) -> PublicKey:
    ident = did.split("#", 1)[0]
    try:
        jwk = client_text.loads(b64url_decode(ident[len("did:jwk:") :]))
        return public_key_from_jwk(jwk)
    except UnsupportedKey as exc:
        raise KeyUnresolvable(
            f"the did:jwk holds a key this verifier does not support: {exc}"
        ) from exc
    except (ValueError, RecursionError, UnusableKey) as exc:
        raise KeyNotFound(f"the did:jwk does not hold a usable public JWK: {exc}") from exc


def did_of(kid_or_did: str) -> str:
    return kid_or_did.split("#", 1)[0]


def resolve_offline(
    *,
    kid: str | None,
    header_jwk: Any,
    issuer_id: str | None,
    trusted: Mapping[str, TrustedKey] | None = None,
) -> ResolvedKey:
    """Resolve a foreign credential's key without any network access."""
    if kid is not None and trusted and kid in trusted:
        entry = trusted[kid]
        try:
            return ResolvedKey(
                public_key_from_jwk(entry.jwk),
                entry.controller if entry.controller is not None else issuer_id,
                "the verifier's trusted keys",
                KeyKind.trusted,
            )
        except UnusableKey as exc:
            raise KeyUnresolvable(f"trusted key {kid} is unusable: {exc}") from exc
    if kid is not None and kid.startswith("did:key:"):
        return ResolvedKey(
            did_key_public_key(kid),
            did_of(kid),
            "did:key (key derived from the identifier)",
            KeyKind.did_key,
        )
    if kid is not None and kid.startswith("did:jwk:"):
        return ResolvedKey(
            did_jwk_public_key(kid),
            did_of(kid),
            "did:jwk (key derived from the identifier)",
            KeyKind.did_jwk,
        )
    if header_jwk is not None:
        try:
            key = public_key_from_jwk(header_jwk)
        except UnsupportedKey as exc:
            raise KeyUnresolvable(
                f"the embedded jwk is of a type not supported here: {exc}"
            ) from exc
        except UnusableKey as exc:
            raise KeyNotFound(f"the embedded jwk is unusable: {exc}") from exc
        return ResolvedKey(
            key, _embedded_key_owner(key, issuer_id), "jwk embedded in the token header"
        )
    if kid is None and issuer_id is not None:
        if issuer_id.startswith("did:key:"):
            return ResolvedKey(
                did_key_public_key(issuer_id), issuer_id, "the issuer's did:key", KeyKind.did_key
            )
        if issuer_id.startswith("did:jwk:"):
            return ResolvedKey(
                did_jwk_public_key(issuer_id), issuer_id, "the issuer's did:jwk", KeyKind.did_jwk
            )
    if kid is None:
        raise KeyUnresolvable(
            "the token names no key (no kid, no jwk) and its issuer is not a did:key or did:jwk"
        )
    if kid.startswith("did:web:") or kid.startswith("https://"):
        raise KeyUnresolvable(
            f"the key {kid} must be fetched from the issuer's site; remote key resolution is not enabled here"
        )
    raise KeyUnresolvable(f"the key {kid} cannot be resolved: unknown key identifier scheme")


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _embedded_key_owner(key: PublicKey, issuer_id: str | None) -> str | None:
    """Whose an embedded `jwk` is: the issuer's only when the issuer is a did:key or did:jwk
    that holds this very key. Anyone can put any key in a header, so for every other issuer id
    (https, did:web, …) the key belongs to nobody we can name."""
    if issuer_id is None or not issuer_id.startswith(("did:key:", "did:jwk:")):
        return None
    try:
        own = (
            did_key_public_key(issuer_id)
            if issuer_id.startswith("did:key:")
            else did_jwk_public_key(issuer_id)
        )
    except (KeyNotFound, KeyUnresolvable):
        return None
    return did_of(issuer_id) if _spki(own) == _spki(key) else None
