"""Reading the credential out of its envelope: a VC-JWT payload (VCDM 2.0 or the legacy VCDM 1.1
`vc` claim) or plain JSON, and holding the JWT's registered claims to the credential's fields.

Pure functions: no I/O, no key material. A claim that disagrees with the credential makes the
token unreadable as a credential (`format` fails naming the claim): OB 3.0 §8.2.4.1 says the
credential is then not valid, and a verifier that shows one of the two values would show a
value nobody can say was signed with that meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ACCEPTED_TYP = {None, "JWT", "vc+jwt", "vc+ld+jwt"}
ACCEPTED_CTY = {None, "vc", "vc+ld+json", "credential+claims"}
JWT_ONLY_CLAIMS = ("iss", "jti", "sub", "nbf", "exp", "iat", "aud")


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def types_of(obj: Any) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    return as_list(obj.get("type"))


def is_vc(obj: Any) -> bool:
    return "VerifiableCredential" in types_of(obj)


def issuer_id_of(credential: dict[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    value = issuer.get("id") if isinstance(issuer, dict) else issuer
    return value if isinstance(value, str) and value else None


def strip_jwt_claims(credential: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in credential.items() if k not in JWT_ONLY_CLAIMS}


def parse_time(value: Any) -> datetime | None:
    """A date-time from an ISO 8601 string or NumericDate, or None if it is not one.

    Lenient on purpose (pages and sorting use it); the `data_model` check is where a date
    without a time zone, a bare date or a number in a credential field is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # 1e20, inf, NaN: not a date, not a 500
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _numeric_date(value: Any) -> int | None:
    """A JWT NumericDate (RFC 7519 §2) to whole seconds, or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return math.floor(value)


def _seconds(stamp: Any) -> int | None:
    moment = parse_time(stamp) if isinstance(stamp, str) else None
    return math.floor(moment.timestamp()) if moment is not None else None


@dataclass(frozen=True)
class Envelope:
    """What a JWT payload holds: the credential (or None), and why not / what it is."""

    credential: dict[str, Any] | None
    detail: str
    legacy: bool = False  # VCDM 1.1 `vc` claim


def credential_from_jwt(header: dict[str, Any], payload: dict[str, Any]) -> Envelope:
    """The credential inside a VC-JWT, with its registered claims held to its fields."""
    typ, cty = header.get("typ"), header.get("cty")
    if typ not in ACCEPTED_TYP:
        return Envelope(None, f"Unsupported JWT typ {typ!r}: expected absent, 'JWT' or 'vc+jwt'.")
    if cty not in ACCEPTED_CTY:
        return Envelope(None, f"Unsupported JWT cty {cty!r}.")
    if header.get("crit") is not None:
        return Envelope(
            None,
            f"The header marks extensions as critical that this verifier does not understand: {header.get('crit')!r}.",
        )
    if "@context" in payload:
        if "vc" in payload or "vp" in payload:
            return Envelope(
                None, "A VCDM 2.0 payload must not also carry the legacy 'vc' or 'vp' claims."
            )
        if not is_vc(payload):
            return Envelope(
                None, "The payload is not a Verifiable Credential (no VerifiableCredential type)."
            )
        problems = claim_problems(payload, payload, legacy=False, required=is_open_badge(payload))
        if problems:
            return Envelope(None, "OB 3.0 §8.2.4.1 (VC-JWT claims): " + " ".join(problems))
        return Envelope(payload, "A VC-JWT with the credential as its payload (VCDM 2.0).")
    vc = payload.get("vc")
    if isinstance(vc, dict):
        if not is_vc(vc):
            return Envelope(None, "The 'vc' claim is not a Verifiable Credential.")
        credential = _fill_from_claims(vc, payload)
        problems = claim_problems(credential, payload, legacy=True, required=False)
        if problems:
            return Envelope(None, "VC-JWT 1.1 §6.3.1 (claims): " + " ".join(problems), legacy=True)
        return Envelope(credential, "A legacy VC-JWT with a 'vc' claim (VCDM 1.1).", legacy=True)
    if "vp" in payload:
        return Envelope(None, "This is a presentation (vp), not a credential.")
    return Envelope(
        None, "The payload holds no credential: neither a VCDM 2.0 credential nor a 'vc' claim."
    )


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _fill_from_claims(vc: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """VC-JWT 1.1 §6.3.1: the registered claims set the credential properties they stand for
    (an absent or empty property takes the claim's value)."""
    credential = dict(vc)
    if _blank(credential.get("id")) and isinstance(payload.get("jti"), str):
        credential["id"] = payload["jti"]
    if isinstance(payload.get("iss"), str):
        issuer = credential.get("issuer")
        if _blank(issuer):
            credential["issuer"] = payload["iss"]
        elif isinstance(issuer, dict) and _blank(issuer.get("id")):
            credential["issuer"] = {**issuer, "id": payload["iss"]}
    for field, claim in (("issuanceDate", "nbf"), ("expirationDate", "exp")):
        seconds = _numeric_date(payload.get(claim))
        if _blank(credential.get(field)) and seconds is not None:
            try:
                moment = datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                continue  # left blank: the data model check names it
            credential[field] = moment.isoformat().replace("+00:00", "Z")
    subject = credential.get("credentialSubject")
    if isinstance(payload.get("sub"), str) and isinstance(subject, dict) and "id" not in subject:
        credential["credentialSubject"] = {**subject, "id": payload["sub"]}
    return credential


def is_open_badge(credential: dict[str, Any]) -> bool:
    types = types_of(credential)
    return "OpenBadgeCredential" in types or "AchievementCredential" in types


def claim_problems(
    credential: dict[str, Any], payload: dict[str, Any], *, legacy: bool, required: bool
) -> list[str]:
    """Each registered claim that is missing or disagrees with the credential, in words.

    A claim that is present must equal its field, always (VC-JOSE-COSE §3.1: `iss` MUST match
    the issuer, and so on). An Open Badge (`required`, OB 3.0 §8.2.4.1) must also carry them:
    `iss`, `jti`, `nbf`; `sub` when the subject has an id; `exp` exactly when `validUntil` is
    set. VCDM 1.1: the claims were folded into the credential first (`_fill_from_claims`)."""
    problems: list[str] = []
    start, end = ("issuanceDate", "expirationDate") if legacy else ("validFrom", "validUntil")
    subject = first(credential.get("credentialSubject"))
    subject_id = subject.get("id") if isinstance(subject, dict) else None
    expected: list[tuple[str, Any, bool]] = [
        ("iss", issuer_id_of(credential), True),
        ("jti", credential.get("id"), True),
        ("sub", subject_id, subject_id is not None),
    ]
    for claim, value, needed in expected:
        if claim not in payload:
            if needed and required:
                problems.append(f"The '{claim}' claim is missing.")
        elif payload[claim] != value:
            problems.append(f"The '{claim}' claim ({payload[claim]!r}) is not {value!r}.")
    for claim, field in (("nbf", start), ("exp", end)):
        stamp = credential.get(field)
        if claim not in payload:
            if required and stamp is not None:
                problems.append(f"The '{claim}' claim is missing ({field} is {stamp!r}).")
            continue
        seconds = _numeric_date(payload[claim])
        if seconds is None:
            problems.append(f"The '{claim}' claim is not a NumericDate.")
            continue
        if stamp is None:
            problems.append(f"The '{claim}' claim is set, and the credential has no {field}.")
            continue
        wanted = _seconds(stamp)
        if wanted is not None and wanted != seconds:
            problems.append(f"The '{claim}' claim ({payload[claim]!r}) is not {field} ({stamp!r}).")
    return problems
