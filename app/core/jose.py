"""The one place that signs and the one place that verifies JWS compact tokens."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms

from app.core import text as client_text
from app.core.keys import PrivateKey, PublicKey, SigningAlgorithm


class JoseError(Exception):
    """The token could not be verified; the message says why, for the `signature` check."""


def algorithm_for_key(key: PublicKey) -> str:
    """The single JWS algorithm a key may verify: pinned by the key, never taken from the header.

    Pinning defeats algorithm confusion (an HS256 token "signed" with a public key, `alg: none`,
    or an ES256 key asked to accept RS256).
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        alg = by_curve.get(key.curve.name)
        if alg is None:
            raise JoseError(f"unsupported EC curve {key.curve.name}")
        return alg
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    raise JoseError(f"unsupported key type {type(key).__name__}")


def sign(payload: dict[str, Any], *, key: PrivateKey, algorithm: SigningAlgorithm, kid: str) -> str:
    """Sign `payload` as a compact JWS with header {alg, kid, typ: "JWT"} (OB 3.0 VC-JWT).

    The serialisation is the one `jwt.encode` writes (compact JSON, base64url without padding);
    the signature math is PyJWT's algorithm (DER to raw r||s for ECDSA). Bulk issuance signs
    thousands of credentials a second, and `jwt.encode` re-checks the registered claims and copies
    the payload on the way, which cost more than the signature.
    """
    header = {"alg": algorithm.value, "kid": kid, "typ": "JWT"}
    signing_input = b".".join(
        (
            base64.urlsafe_b64encode(_compact(header)).rstrip(b"="),
            base64.urlsafe_b64encode(_compact(payload)).rstrip(b"="),
        )
    )
    signature = _SIGNERS[algorithm.value].sign(signing_input, key)
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode("ascii")


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


_SIGNERS: dict[str, Algorithm] = get_default_algorithms()


@dataclass(frozen=True)
class Jws:
    """A compact JWS read but NOT verified: what is needed to find its key and then verify it."""

    header: dict[str, Any]
    payload: dict[str, Any]
    payload_segment: str  # the payload as signed (base64url): a stable key for content caches
    signing_input: bytes
    signature: bytes


# The signature math is PyJWT's (raw r||s to DER for ECDSA, PKCS#1 v1.5, Ed25519), called with
# the one algorithm the key allows. Only the compact serialisation is read here: PyJWT's reader
# checks every character of every segment in a Python generator, which cost more than the
# ECDSA verification itself; the rules below are the same, checked by a regex and C code.
_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def _segment(text: str, name: str) -> bytes:
    """One base64url segment, as strictly as PyJWT reads it (GHSA-hxm8-2xgr-2p9m).

    Up to two trailing '=' are tolerated (some issuers pad) if the length is then a multiple of 4;
    anything outside the alphabet, an impossible length or non-canonical trailing bits is refused.
    """
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if padding > 2 or (padding and len(text) % 4) or len(stripped) % 4 == 1:
        raise JoseError(f"malformed JWS: invalid {name} padding")
    if not _SEGMENT.fullmatch(stripped):
        raise JoseError(f"malformed JWS: the {name} is not base64url")
    raw = stripped.encode("ascii")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JoseError(f"malformed JWS: invalid {name} padding") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise JoseError(f"malformed JWS: invalid {name} padding")
    return decoded


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        # Depth-limited, and refusing NUL and lone surrogates (app.core.text): a token's claims
        # reach the database, pages and responses, which can hold neither.
        value = client_text.loads(data)
    except client_text.UnacceptableJSON as exc:
        raise JoseError(f"the JWS {name} cannot be accepted ({exc})") from exc
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JoseError(f"malformed JWS: the {name} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise JoseError(f"the JWS {name} is not a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    """Header members that make a token unreadable whatever the key (RFC 7515 §4.1)."""
    if "kid" in header and not isinstance(header["kid"], str):
        raise JoseError("malformed JWS header: the kid is not a string")
    if "crit" in header:
        # §4.1.11: a recipient MUST reject extensions it does not understand, and this verifier
        # understands none (not even RFC 7797's b64, see below).
        crit = header["crit"]
        if not isinstance(crit, list) or not crit or not all(isinstance(e, str) for e in crit):
            raise JoseError("malformed JWS header: crit must be a non-empty list of names")
        raise JoseError(f"unsupported critical header extensions: {', '.join(crit)}")
    if header.get("b64", True) is not True:
        # An unencoded (RFC 7797) payload: never part of a VC-JWT.
        raise JoseError("unencoded payloads (b64: false) are not supported")


def parse(token: str) -> Jws:
    """A compact JWS, parsed but NOT verified (to find its key; then call `verify_jws`)."""
    if token.count(".") != 2:
        raise JoseError("not a compact JWS: expected three base64url parts separated by dots")
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _json_object(_segment(header_segment, "header"), "header")
    _check_header(header)
    payload = _json_object(_segment(payload_segment, "payload"), "payload")
    signature = _segment(signature_segment, "signature")
    return Jws(
        header=header,
        payload=payload,
        payload_segment=payload_segment,
        signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
        signature=signature,
    )


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, parsed but NOT verified (to find the key)."""
    jws = parse(token)
    return jws.header, jws.payload


def verify_jws(jws: Jws, key: PublicKey) -> None:
    """Verify a parsed token's signature with `key`; JoseError says why it does not verify.

    The algorithm is the key's (`algorithm_for_key`): a header naming any other one, `none` or an
    HMAC among them, is refused before any signature math. Only the signature is checked here;
    validity dates, issuer binding and the rest are separate checks of the verification service,
    so that each failure is reported by name.
    """
    algorithm = algorithm_for_key(key)
    if jws.header.get("alg") != algorithm:
        raise JoseError(f"the token's algorithm is not {algorithm}, the only one its key allows")
    implementation = _ALGORITHMS[algorithm]
    try:
        # prepare_key only type-checks a key object (and its curve against the algorithm's).
        prepared = implementation.prepare_key(key)
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise JoseError(f"the key cannot verify {algorithm}: {exc}") from exc
    if not implementation.verify(jws.signing_input, prepared, jws.signature):
        raise JoseError("the signature does not match the payload and key")


def verify(token: str, key: PublicKey) -> dict[str, Any]:
    """Verify the compact JWS signature with `key` and return the payload object."""
    jws = parse(token)
    verify_jws(jws, key)
    return jws.payload
