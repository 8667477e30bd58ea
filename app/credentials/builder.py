"""Pure functions that build OB 3.0 credentials and their VC-JWT claims, and secure them (the
embedded Data Integrity proof first, then the VC-JWT over the credential with its proof). No
I/O here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from app.core import data_integrity, jose
from app.core.jsonld import ContextLoader
from app.core.standards import OB3_CONTEXT, OB3_EXTENSIONS_CONTEXT, OB3_SCHEMA_ID, VC2_CONTEXT

if TYPE_CHECKING:
    from app.issuers.service import IssuerSigner


@lru_cache(maxsize=1024)
def isoformat(moment: datetime) -> str:
    """XML Schema dateTimeStamp in UTC with a `Z`, as VCDM 2.0 and the OB 3.0 schema expect.

    Cached: a bulk chunk stamps hundreds of credentials with the same few instants."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def identity_hash(value: str, salt: str) -> str:
    """OB 3.0 IdentityHash: `sha256$` + hex SHA-256 of the identifier with the salt appended."""
    return "sha256$" + hashlib.sha256((value + salt).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Recipient:
    subject_id: str
    email_hash: str | None = None
    salt: str | None = None
    name: str | None = None

    def identifiers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.email_hash is not None:
            out.append(
                {
                    "type": "IdentityObject",
                    "hashed": True,
                    "identityHash": self.email_hash,
                    "identityType": "emailAddress",
                    "salt": self.salt,
                }
            )
        if self.name is not None:
            out.append(
                {
                    "type": "IdentityObject",
                    "hashed": False,
                    "identityHash": self.name,
                    "identityType": "name",
                }
            )
        return out


def build_credential(
    *,
    credential_id: str,
    issuer_profile: dict[str, Any],
    achievement: dict[str, Any],
    recipient: Recipient,
    valid_from: datetime,
    valid_until: datetime | None,
    awarded: datetime,
    evidence: list[dict[str, Any]] | None = None,
    credential_status: dict[str, Any] | list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An `OpenBadgeCredential` on the VCDM 2.0 contexts, ready to be the VC-JWT payload.

    Every term it uses is defined by its contexts (the 1EdTech validator expands it with no
    fallback vocabulary): the OB extensions context defines the `credentialSchema` type."""
    subject: dict[str, Any] = {
        "id": recipient.subject_id,
        "type": ["AchievementSubject"],
        "achievement": achievement,
    }
    identifiers = recipient.identifiers()
    if identifiers:
        subject["identifier"] = identifiers
    credential: dict[str, Any] = {
        "@context": [VC2_CONTEXT, OB3_CONTEXT, OB3_EXTENSIONS_CONTEXT],
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": achievement["name"],
        "description": achievement.get("description"),
        "issuer": issuer_profile,
        "validFrom": isoformat(valid_from),
        "awardedDate": isoformat(awarded),
        "credentialSubject": subject,
        "credentialSchema": [{"id": OB3_SCHEMA_ID, "type": "1EdTechJsonSchemaValidator2019"}],
    }
    if credential["description"] is None:
        del credential["description"]
    if valid_until is not None:
        credential["validUntil"] = isoformat(valid_until)
    if evidence:
        credential["evidence"] = [{"type": ["Evidence"], **e} for e in evidence]
    if credential_status is not None:
        credential["credentialStatus"] = credential_status
    return credential


def jwt_claims(credential: dict[str, Any]) -> dict[str, Any]:
    """OB 3.0 VC-JWT: the credential is the payload, plus the registered claims it implies."""
    claims = dict(credential)
    claims["iss"] = (
        credential["issuer"]["id"]
        if isinstance(credential["issuer"], dict)
        else credential["issuer"]
    )
    claims["jti"] = credential["id"]
    claims["sub"] = credential["credentialSubject"]["id"]
    claims["nbf"] = _epoch(credential["validFrom"])
    if "validUntil" in credential:
        claims["exp"] = _epoch(credential["validUntil"])
    return claims


# Our credentials name only contexts this service ships: canonicalising them fetches nothing.
# Long-lived, so that the contexts are processed once per process.
CONTEXTS = ContextLoader()


def secure(
    credential: dict[str, Any], *, signer: IssuerSigner, created: datetime
) -> tuple[dict[str, Any], str]:
    """(the credential as issued, its VC-JWT): single and bulk issuance both secure this way.

    An issuer with Data Integrity gets an eddsa-rdfc-2022 proof made first; the VC-JWT then
    secures the credential that includes it (OB 3.0 §8.3: one credential, both proofs)."""
    if signer.proof is not None:
        credential = data_integrity.add_proof(
            credential,
            key=signer.proof.key,
            verification_method=signer.proof.verification_method,
            created=created,
            loader=CONTEXTS,
        )
    token = jose.sign(
        jwt_claims(credential), key=signer.key, algorithm=signer.algorithm, kid=signer.kid
    )
    return credential, token


@lru_cache(maxsize=1024)
def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
