"""Which key signed, and whether that key speaks for the issuer the credential names.

The signature proves only that a key signed. The issuer binding proves the key is the issuer's:
its controller (the DID whose document lists it, the did:key/did:jwk it is derived from, the
https origin that serves it, our own register) is the credential's issuer id. Identifiers are
compared canonically (`app/core/identifiers.py`): our own DID in another spelling is ours, and
held to our register. A key that is not bound never passes the `issuer` check, and no key is
fetched from a host that could not bind it anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.identifiers import canonical_did, canonical_identifier, canonical_origin
from app.core.keys import PublicKey, UnusableKey, public_key_from_jwk
from app.credentials.models import Credential
from app.issuers import repository as issuers_repository
from app.issuers.models import KeyStatus
from app.verify import repository as verify_repository
from app.verify.keys import (
    KeyCompromised,
    KeyKind,
    KeyNotFound,
    KeyUnresolvable,
    ResolvedKey,
    TrustedKey,
    did_of,
    resolve_offline,
)
from app.verify.remote import Fetcher, resolve_remote_key

# Algorithms whose verification is implemented (`app/core/jose.py` pins one to each key type).
SUPPORTED_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256"})


class KeyNotBound(Exception):
    """The key named is not one the credential's issuer can have published (an `issuer` fail)."""


@dataclass(frozen=True)
class KeyLookup:
    """A resolved key and, for our own credentials, the issuance record read with it."""

    key: ResolvedKey
    record: Credential | None = None
    record_read: bool = False


def algorithm_problem(alg: Any) -> tuple[bool, str] | None:
    """None when `alg` is one we verify; else (is_attack, why). `none` and the HMAC family are
    never a public-key signature (algorithm confusion: a `fail`); anything else well-formed is
    an algorithm this verifier cannot check (ES256K, PS256…: an `error`, status unknown)."""
    if alg in SUPPORTED_ALGORITHMS:
        return None
    if not isinstance(alg, str) or not alg or alg.lower() == "none" or alg.upper().startswith("HS"):
        return True, f"the header's alg {alg!r} is not a public-key signature algorithm"
    return False, f"the algorithm {alg} is not supported by this verifier"


def is_bound(key: ResolvedKey, issuer_id: str) -> bool:
    """Whether the key's controller is the credential's issuer (canonically compared)."""
    return key.controller is not None and canonical_identifier(
        key.controller
    ) == canonical_identifier(issuer_id)


@dataclass
class KeyResolver:
    """Finds the key a token names: our register, the identifier itself, or the issuer's site."""

    session: Session
    settings: Settings
    key_cache: dict[str, PublicKey]
    trusted_keys: Mapping[str, TrustedKey] | None = None
    fetcher: Fetcher | None = None

    @property
    def our_did_prefix(self) -> str:
        return self.settings.issuer_did("")

    def is_ours(self, ident: str) -> bool:
        """Whether an issuer id or kid names one of our issuers, in any spelling of our DID."""
        return ident.lower().startswith("did:") and canonical_did(ident).startswith(
            self.our_did_prefix
        )

    def resolve(
        self, *, kid: str | None, header_jwk: Any, issuer_id: str, record_id: uuid.UUID | None
    ) -> KeyLookup:
        """The key for a token. Raises KeyNotFound / KeyCompromised (`fail`), KeyUnresolvable
        (`error`), KeyNotBound (the named key cannot be the issuer's: `issuer` fails unfetched)."""
        if kid is not None and kid.startswith("#") and issuer_id.startswith("did:"):
            # A DID URL relative to the issuer's DID ('#z6Mk…', '#0'), as some issuers write it.
            kid = did_of(issuer_id) + kid
        issuer_ours = self.is_ours(issuer_id)
        if kid is not None and self.is_ours(kid):
            return self._our_key(kid, record_id)
        if issuer_ours:
            # Our issuers sign only with register keys, named by kid: an embedded key, another
            # DID's key or no kid at all can never speak for them.
            raise KeyNotBound(
                f"{issuer_id} is an issuer of this service, and the token is not signed with one of its registered keys"
            )
        if self.trusted_keys and kid is not None and kid in self.trusted_keys:
            return KeyLookup(
                resolve_offline(
                    kid=kid, header_jwk=None, issuer_id=issuer_id, trusted=self.trusted_keys
                )
            )
        if kid is not None and kid.startswith(("did:web:", "https://")):
            self._must_be_bindable(kid, issuer_id)
            if kid.startswith(self.settings.base_url + "/"):
                # Never fetch from ourselves: our issuers' keys are in the register.
                raise KeyNotFound(
                    f"{kid} is under this service's URL, and it publishes no such key"
                )
            if self.fetcher is None:
                raise KeyUnresolvable(
                    f"the key {kid} must be fetched from the issuer's site; remote key resolution is not enabled here"
                )
            return KeyLookup(resolve_remote_key(self.fetcher, kid, issuer_id))
        return KeyLookup(
            resolve_offline(
                kid=kid, header_jwk=header_jwk, issuer_id=issuer_id, trusted=self.trusted_keys
            )
        )

    def _must_be_bindable(self, kid: str, issuer_id: str) -> None:
        """Refuse, before any fetch, a did:web or https key that could not be the issuer's."""
        if kid.startswith("did:web:"):
            if not issuer_id.lower().startswith("did:") or canonical_did(kid) != canonical_did(
                issuer_id
            ):
                raise KeyNotBound(
                    f"the key {kid} belongs to {did_of(kid)}, not to the credential's issuer {issuer_id}"
                )
            return
        origin = canonical_origin(kid)
        if origin is None or origin != canonical_origin(issuer_id):
            raise KeyNotBound(
                f"the key {kid} is served by {origin or 'another site'}, which does not speak for the issuer {issuer_id}"
            )

    def _our_key(self, kid: str, record_id: uuid.UUID | None) -> KeyLookup:
        """One of our issuers' keys, read from the register, with the issuance record (one query)."""
        did, _, fragment = kid.partition("#")
        did = canonical_did(did)
        slug = did[len(self.our_did_prefix) :]
        if not fragment:
            raise KeyNotFound(f"{kid} names no key (no #fragment)")
        found = verify_repository.key_and_record(
            self.session, slug=slug, key_id=fragment, record_id=record_id
        )
        if found is None:
            if issuers_repository.get_by_slug(self.session, slug) is None:  # only to say which
                raise KeyNotFound(f"{did} is not an issuer of this service")
            raise KeyNotFound(f"{did} has no key {fragment}")
        state, record = found
        # Status is read from the register on every verification (before the parsed-key cache),
        # so a key marked compromised stops verifying at once, even if its key is cached. The key
        # material itself is immutable: the kid's fragment is its RFC 7638 thumbprint.
        if state.status == KeyStatus.compromised:
            when = (
                state.compromised_at.isoformat(timespec="seconds").replace("+00:00", "Z")
                if state.compromised_at
                else "an unrecorded date"
            )
            raise KeyCompromised(
                f"the key {kid} was reported compromised on {when}; "
                "credentials it signed can no longer be trusted"
            )
        cache_key = f"{did}#{fragment}"
        key = self.key_cache.get(cache_key)
        if key is None:
            try:
                key = public_key_from_jwk(state.public_jwk)
            except UnusableKey as exc:  # pragma: no cover - we only store keys we generated
                raise KeyUnresolvable(str(exc)) from exc
            self.key_cache[cache_key] = key
        return KeyLookup(
            ResolvedKey(key, did, "this service's key register", KeyKind.register),
            record=record,
            record_read=True,
        )


__all__ = [
    "SUPPORTED_ALGORITHMS",
    "KeyCompromised",
    "KeyLookup",
    "KeyNotBound",
    "KeyNotFound",
    "KeyResolver",
    "KeyUnresolvable",
    "TrustedKey",
    "algorithm_problem",
    "is_bound",
]
