"""Issuer logic: creation with a first signing key and API key, key lookups, public documents."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.models import AuditEventType
from app.core import multikey
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import AppError, Conflict, NotFound, Unprocessable
from app.core.keys import (
    KeyStore,
    KeyStoreUnavailable,
    PrivateKey,
    SigningAlgorithm,
    generate_private_key,
    jwk_thumbprint,
    public_jwk,
    public_key_from_jwk,
)
from app.core.security import hash_secret, new_api_key
from app.issuers import repository
from app.issuers.models import ApiKey, Issuer, KeyPurpose, KeyStatus, SigningKey
from app.issuers.schemas import ApiKeyCreate, IssuerCreate, IssuerUpdate


class IssuerNotFound(NotFound):
    pass


class NoActiveKey(AppError):
    status_code = 409


class SigningKeyNotFound(NotFound):
    pass


class LastActiveKey(Conflict):
    """Taking the only active key out of service would leave the issuer unable to sign."""


@dataclass(frozen=True)
class ProofSigner:
    """The issuer's Data Integrity key: its verification method and the Ed25519 private key."""

    verification_method: str
    key: ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class IssuerSigner:
    """What issuance needs to sign for an issuer: its did, the key and the header kid, and
    the Data Integrity key when the issuer adds embedded proofs."""

    did: str
    kid: str
    algorithm: SigningAlgorithm
    key: PrivateKey
    signing_key_id: uuid.UUID
    proof: ProofSigner | None = None


class NoDataIntegrityKey(AppError):
    status_code = 409


MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"

# The 1EdTech Open Badges 3.0 validator verifies VC-JWTs signed with ES256 or RS256 only.
_EDDSA_WARNING = (
    "EdDSA: the 1EdTech validator accepts only ES256 and RS256, so it will reject credentials "
    "signed with this key (other verifiers accept EdDSA). Rotate to ES256 or RS256 to be "
    "accepted everywhere."
)


def algorithm_warnings(algorithm: SigningAlgorithm | str) -> list[str]:
    """What an operator should know before signing with `algorithm` (empty when nothing)."""
    return [_EDDSA_WARNING] if algorithm == SigningAlgorithm.EdDSA else []


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    return slug or "issuer"


def _free_slug(session: Session, wanted: str | None, name: str) -> str:
    if wanted is not None:
        if repository.slug_taken(session, wanted):
            raise Conflict(f"The slug {wanted!r} is already taken.")
        return wanted
    base = slugify(name)
    candidate, n = base, 1
    while repository.slug_taken(session, candidate):
        n += 1
        suffix = f"-{n}"
        candidate = base[: 63 - len(suffix)] + suffix
    return candidate


def add_signing_key(
    session: Session,
    *,
    keystore: KeyStore,
    issuer: Issuer,
    algorithm: SigningAlgorithm,
    purpose: KeyPurpose = KeyPurpose.jwt,
) -> SigningKey:
    """Generate a key, write the private half to the key store and record the public half.

    A Data Integrity key is always Ed25519 (eddsa-rdfc-2022)."""
    if purpose is KeyPurpose.data_integrity:
        algorithm = SigningAlgorithm.EdDSA
    private = generate_private_key(algorithm)
    jwk = public_jwk(private.public_key())
    record = SigningKey(
        id=uuid.uuid4(),
        issuer_id=issuer.id,
        key_id=jwk_thumbprint(jwk),
        algorithm=algorithm.value,
        public_jwk=jwk,
        status=KeyStatus.active,
        purpose=purpose,
        created_at=utcnow(),
    )
    keystore.save(str(record.id), private)
    session.add(record)
    session.flush()
    return record


def create_api_key(
    session: Session, *, issuer: Issuer, data: ApiKeyCreate | None = None
) -> tuple[ApiKey, str]:
    secret = new_api_key()
    record = ApiKey(
        id=uuid.uuid4(),
        issuer_id=issuer.id,
        name=data.name if data else None,
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.api_key_created,
        subject=str(record.id),
        data={"prefix": record.prefix, "name": record.name},
    )
    return record, secret


def create_issuer(
    session: Session, *, keystore: KeyStore, data: IssuerCreate
) -> tuple[Issuer, SigningKey, ApiKey, str]:
    """Create an issuer with its first signing key and API key (the secret is returned once)."""
    issuer = Issuer(
        id=uuid.uuid4(),
        slug=_free_slug(session, data.slug, data.name),
        name=data.name,
        url=str(data.url),
        email=str(data.email) if data.email else None,
        description=data.description,
        image=str(data.image) if data.image else None,
        algorithm=data.algorithm.value,
        suspension=data.suspension,
        data_integrity=data.data_integrity,
        linkedin_organization_id=data.linkedin_organization_id,
        created_at=utcnow(),
    )
    session.add(issuer)
    try:
        session.flush()
    except IntegrityError as exc:
        # A concurrent request took the slug between our check and our insert (the unique
        # constraint is the real guard). Nothing else was written yet: the unit of work rolls back.
        raise Conflict(
            f"The slug {issuer.slug!r} was taken by a concurrent request; try again."
        ) from exc
    key = add_signing_key(session, keystore=keystore, issuer=issuer, algorithm=data.algorithm)
    # The genesis event; it also writes the chain head, so later appends only ever lock a row.
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.issuer_created,
        subject=issuer.slug,
        data={
            "name": issuer.name,
            "url": issuer.url,
            "algorithm": issuer.algorithm,
            "suspension": issuer.suspension,
            "key_id": key.key_id,
        },
    )
    if data.data_integrity:
        # The first Data Integrity key: a rotation with nothing to retire (one audit event).
        rotate_key(session, keystore=keystore, issuer=issuer, purpose=KeyPurpose.data_integrity)
    api_key, secret = create_api_key(session, issuer=issuer)
    return issuer, key, api_key, secret


def list_issuers(session: Session) -> list[tuple[Issuer, list[SigningKey]]]:
    """Every issuer with its signing keys (two queries, whatever the number of issuers)."""
    issuers = repository.list_all(session)
    keys: dict[uuid.UUID, list[SigningKey]] = {}
    for key in repository.keys_of_many(session, [i.id for i in issuers]):
        keys.setdefault(key.issuer_id, []).append(key)
    return [(i, keys.get(i.id, [])) for i in issuers]


def get_issuer(session: Session, *, slug: str) -> Issuer:
    issuer = repository.get_by_slug(session, slug)
    if issuer is None:
        raise IssuerNotFound(f"No issuer with slug {slug!r}.")
    return issuer


def update_issuer(
    session: Session, *, keystore: KeyStore, issuer: Issuer, data: IssuerUpdate
) -> Issuer:
    """Apply the fields present in the request (`exclude_unset`: absent means unchanged).

    Turning Data Integrity on gives the issuer an Ed25519 key if it has no active one; turning
    it off stops adding proofs (its keys stay published: what they signed keeps verifying)."""
    changes = data.model_dump(exclude_unset=True)
    if "linkedin_organization_id" in changes:
        issuer.linkedin_organization_id = data.linkedin_organization_id
    if changes.get("data_integrity") is not None:
        audit.lock_chain(session, issuer.id)
        issuer.data_integrity = bool(data.data_integrity)
        if issuer.data_integrity and (
            repository.active_key(session, issuer.id, KeyPurpose.data_integrity) is None
        ):
            rotate_key(session, keystore=keystore, issuer=issuer, purpose=KeyPurpose.data_integrity)
    session.flush()
    return issuer


def linkedin_organization_id(session: Session, issuer_id: uuid.UUID) -> str | None:
    """The issuer's LinkedIn organization id, for add-to-profile links of its credentials."""
    issuer = repository.get(session, issuer_id)
    return issuer.linkedin_organization_id if issuer is not None else None


def list_api_keys(session: Session, *, issuer: Issuer) -> Sequence[ApiKey]:
    """The issuer's API keys, oldest first (their hashes only: secrets are never stored)."""
    return repository.api_keys_of(session, issuer.id)


def logo_url(session: Session, issuer_id: uuid.UUID) -> str | None:
    """The registered issuer's logo (its profile `image`), for pages that show its credentials:
    the signed credential names the issuer but does not carry its logo."""
    issuer = repository.get(session, issuer_id)
    image = issuer.image if issuer is not None else None
    return image if image and image.startswith("https://") else None


def revoke_api_key(session: Session, *, issuer: Issuer, key_id: uuid.UUID) -> ApiKey:
    record = repository.api_key(session, issuer.id, key_id)
    if record is None:
        raise NotFound(f"Issuer {issuer.slug!r} has no API key {key_id}.")
    if record.revoked_at is not None:
        raise Conflict("This API key is already revoked.")
    record.revoked_at = utcnow()
    session.flush()
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.api_key_revoked,
        subject=str(record.id),
        data={"prefix": record.prefix, "name": record.name},
    )
    return record


def active_key_id(
    session: Session, *, issuer: Issuer, purpose: KeyPurpose = KeyPurpose.jwt
) -> str | None:
    """The key id (thumbprint) the issuer signs with now (JWTs, or `purpose`'s), read from the
    database: a rotation or a compromise made by any replica shows at once."""
    key = repository.active_key(session, issuer.id, purpose)
    return key.key_id if key is not None else None


def signer_for(
    session: Session, *, settings: Settings, keystore: KeyStore, issuer: Issuer
) -> IssuerSigner:
    key = repository.active_key(session, issuer.id)
    if key is None:
        raise NoActiveKey(f"Issuer {issuer.slug!r} has no active signing key.")
    did = settings.issuer_did(issuer.slug)
    proof = None
    if issuer.data_integrity:
        proof_key = repository.active_key(session, issuer.id, KeyPurpose.data_integrity)
        if proof_key is None:
            raise NoDataIntegrityKey(
                f"Issuer {issuer.slug!r} adds Data Integrity proofs and has no active Data Integrity key."
            )
        private = keystore.load(str(proof_key.id))
        if not isinstance(private, ed25519.Ed25519PrivateKey):  # pragma: no cover - we make them
            raise NoDataIntegrityKey(f"The Data Integrity key of {issuer.slug!r} is not Ed25519.")
        proof = ProofSigner(verification_method=f"{did}#{proof_key.key_id}", key=private)
    return IssuerSigner(
        did=did,
        kid=f"{did}#{key.key_id}",
        algorithm=SigningAlgorithm(key.algorithm),
        key=keystore.load(str(key.id)),
        signing_key_id=key.id,
        proof=proof,
    )


def unreadable_active_keys(session: Session, *, keystore: KeyStore) -> list[str]:
    """Every active signing key the key store cannot load, as "issuer <slug>, key <kid>: why"
    (production start-up refuses to run with one: each issuance of that issuer would fail)."""
    found = []
    for slug, key in repository.every_active_key(session):
        try:
            keystore.load(str(key.id))
        except KeyStoreUnavailable as exc:
            found.append(f"issuer {slug}, key {key.key_id}: {exc.reason}")
    return found


# --- key lifecycle ----------------------------------------------------------------------------


def list_signing_keys(session: Session, *, issuer: Issuer) -> Sequence[SigningKey]:
    return repository.keys_of(session, issuer.id)


def rotate_key(
    session: Session,
    *,
    keystore: KeyStore,
    issuer: Issuer,
    algorithm: SigningAlgorithm | None = None,
    purpose: KeyPurpose = KeyPurpose.jwt,
) -> SigningKey:
    """A new key signs from now on; the previously active keys (of that purpose) are retired.

    Retired keys stay in the DID document and JWKS (after the new one), so every credential
    they signed still verifies. The algorithm defaults to the issuer's current one; another
    becomes the issuer's. A Data Integrity key is always Ed25519.
    """
    audit.lock_chain(session, issuer.id)  # one lifecycle change of this issuer at a time
    if purpose is KeyPurpose.data_integrity:
        if algorithm not in (None, SigningAlgorithm.EdDSA):
            raise Unprocessable("A Data Integrity key is an Ed25519 key (eddsa-rdfc-2022).")
        algorithm = SigningAlgorithm.EdDSA
    algorithm = algorithm or SigningAlgorithm(issuer.algorithm)
    previous = repository.active_keys(session, issuer.id, purpose)
    key = add_signing_key(
        session, keystore=keystore, issuer=issuer, algorithm=algorithm, purpose=purpose
    )
    now = utcnow()
    for old in previous:
        old.status = KeyStatus.retired
        old.retired_at = now
    if purpose is KeyPurpose.jwt:
        issuer.algorithm = algorithm.value
    session.flush()
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.key_rotated,
        subject=key.key_id,
        data={
            "key_id": key.key_id,
            "algorithm": key.algorithm,
            "purpose": key.purpose,
            "retired": [old.key_id for old in previous],
        },
    )
    return key


def _key_to_take_out(session: Session, issuer: Issuer, key_id: str, action: str) -> SigningKey:
    """The key, locked against concurrent lifecycle changes; refused if it is the last active one."""
    audit.lock_chain(session, issuer.id)
    key = repository.key_by_kid(session, issuer.id, key_id)
    if key is None:
        raise SigningKeyNotFound(f"Issuer {issuer.slug!r} has no signing key {key_id!r}.")
    purpose = KeyPurpose(key.purpose)
    needed = purpose is KeyPurpose.jwt or issuer.data_integrity
    if (
        needed
        and key.status == KeyStatus.active
        and not any(
            other.id != key.id for other in repository.active_keys(session, issuer.id, purpose)
        )
    ):
        raise LastActiveKey(
            f"{key_id} is the only active signing key of {issuer.slug!r}: rotate first "
            f"(a new key must exist before this one can be {action}).",
            key_id=key_id,
        )
    return key


def retire_key(session: Session, *, issuer: Issuer, key_id: str) -> SigningKey:
    """Stop signing with a key that is not the last active one; it stays published."""
    key = _key_to_take_out(session, issuer, key_id, "retired")
    if key.status != KeyStatus.active:
        raise Conflict(f"The key {key_id} is already {key.status}.", key_id=key_id)
    key.status = KeyStatus.retired
    key.retired_at = utcnow()
    session.flush()
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.key_retired,
        subject=key.key_id,
        data={"key_id": key.key_id},
    )
    return key


def compromise_key(
    session: Session, *, issuer: Issuer, key_id: str, since: datetime | None = None
) -> SigningKey:
    """Mark a key compromised from `since` (default now): credentials it signed stop verifying.

    Every credential the key signed fails, whatever its date: whoever holds the key can write
    any date into a token. The key leaves the DID document and the JWKS, so independent verifiers
    refuse it too; our own verifier finds it in the register and says why it fails.
    """
    now = utcnow()
    if since is not None and since.tzinfo is None:
        raise Unprocessable("since must carry a time zone offset (e.g. 2026-11-28T09:00:00Z).")
    if since is not None and since > now:
        raise Unprocessable("since lies in the future: report a compromise once it happened.")
    key = _key_to_take_out(session, issuer, key_id, "marked compromised")
    if key.status == KeyStatus.compromised:
        raise Conflict(
            f"The key {key_id} was already reported compromised "
            f"(on {key.compromised_at.isoformat() if key.compromised_at else 'an unknown date'}).",
            key_id=key_id,
        )
    previous = key.status
    key.status = KeyStatus.compromised
    key.compromised_at = since or now
    if key.retired_at is None:
        key.retired_at = now
    session.flush()
    audit.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.key_compromised,
        subject=key.key_id,
        data={
            "key_id": key.key_id,
            "since": key.compromised_at.isoformat(),
            "previous_status": str(previous),
        },
    )
    return key


# --- public documents -------------------------------------------------------------------------


def profile_document(settings: Settings, issuer: Issuer) -> dict[str, Any]:
    """The issuer's OB 3.0 Profile, as embedded in its credentials and served publicly."""
    profile: dict[str, Any] = {
        "id": settings.issuer_did(issuer.slug),
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.url,
    }
    if issuer.email:
        profile["email"] = issuer.email
    if issuer.description:
        profile["description"] = issuer.description
    if issuer.image:
        profile["image"] = {"id": issuer.image, "type": "Image", "caption": issuer.name}
    return profile


def published_keys(keys: Sequence[SigningKey]) -> list[SigningKey]:
    """The keys the DID document and the JWKS publish, in the order verifiers should try them.

    A compromised key is left out entirely: independent verifiers read neither a `revoked`
    member nor our register, so a listed key is a key they accept. What it signed now fails
    everywhere with "no such key"; our own verifier reads the register and names the compromise.
    Retired keys stay, so what they signed keeps verifying. The active key comes first, then the
    retired ones newest first: verifiers that try the first key (openbadgeslib checks status lists
    with it) use the one that signs now. Data Integrity keys (Multikeys) come after the JWT keys.
    """
    live = [k for k in keys if k.status != KeyStatus.compromised]
    live.sort(key=lambda k: k.created_at, reverse=True)
    # Stable sorts: JWT keys before Data Integrity keys (the first key is the JWT key that signs
    # now), active before retired, newest first within each.
    live.sort(key=lambda k: k.status != KeyStatus.active)
    live.sort(key=lambda k: k.purpose == KeyPurpose.data_integrity)
    return live


def _public_jwk_with_kid(did: str, key: SigningKey) -> dict[str, Any]:
    return {**key.public_jwk, "kid": f"{did}#{key.key_id}", "alg": key.algorithm, "use": "sig"}


def did_document(settings: Settings, issuer: Issuer, keys: Sequence[SigningKey]) -> dict[str, Any]:
    """did:web document listing every key that was not reported compromised (see `published_keys`).

    Every listed key is also an assertion method: retired keys still vouch for what they signed.
    """
    did = settings.issuer_did(issuer.slug)
    methods = [_verification_method(did, k) for k in published_keys(keys)]
    contexts = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"]
    if any(m["type"] == "Multikey" for m in methods):
        contexts.append(MULTIKEY_CONTEXT)
    return {
        "@context": contexts,
        "id": did,
        "alsoKnownAs": [settings.url(f"/issuers/{issuer.slug}")],
        "verificationMethod": methods,
        "assertionMethod": [m["id"] for m in methods],
    }


def _verification_method(did: str, key: SigningKey) -> dict[str, Any]:
    """A JWT key as a JsonWebKey2020 method; a Data Integrity key as a Multikey (what the
    eddsa-rdfc-2022 verifiers of Digital Bazaar and the DCC read)."""
    ident = f"{did}#{key.key_id}"
    if key.purpose == KeyPurpose.data_integrity:
        return {
            "id": ident,
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multikey.encode_public_key(public_key_from_jwk(key.public_jwk)),
        }
    return {
        "id": ident,
        "type": "JsonWebKey2020",
        "controller": did,
        "publicKeyJwk": _public_jwk_with_kid(did, key),
    }


def jwks_document(settings: Settings, issuer: Issuer, keys: Sequence[SigningKey]) -> dict[str, Any]:
    """The keys of the DID document, in its order, as a JWKS (no compromised key). A Data
    Integrity key is there too (as the JWK of its Ed25519 key), so that the JWKS stays "the
    same keys" as the DID document; the DID document gives it as a Multikey."""
    did = settings.issuer_did(issuer.slug)
    return {"keys": [_public_jwk_with_kid(did, k) for k in published_keys(keys)]}
