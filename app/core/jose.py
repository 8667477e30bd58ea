"""The one place that signs and the one place that verifies JWS compact tokens."""

from __future__ import annotations

import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

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
    """Sign `payload` as a compact JWS with header {alg, kid, typ: "JWT"} (OB 3.0 VC-JWT)."""
    return jwt.encode(payload, key, algorithm=algorithm.value, headers={"kid": kid, "typ": "JWT"})


_PARSER = jwt.api_jws.PyJWS()


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, parsed but NOT verified (to find the key)."""
    if token.count(".") != 2:
        raise JoseError("not a compact JWS: expected three base64url parts separated by dots")
    try:
        # One parse for both parts (PyJWT checks every character of every segment it decodes).
        decoded = _PARSER.decode_complete(token, options={"verify_signature": False})
        header, payload = decoded["header"], json.loads(decoded["payload"])
    except (jwt.PyJWTError, ValueError, UnicodeDecodeError) as exc:
        raise JoseError(f"malformed JWS: {exc}") from exc
    if not isinstance(payload, dict):
        raise JoseError("the JWS payload is not a JSON object")
    return header, payload


def verify(token: str, key: PublicKey) -> dict[str, Any]:
    """Verify the compact JWS signature with `key` and return the payload object.

    Only the signature is checked here; validity dates, issuer binding and the rest are separate
    checks of the verification service, so that each failure is reported by name.
    """
    algorithm = algorithm_for_key(key)
    try:
        decoded = _PARSER.decode_complete(
            token,
            key,
            algorithms=[algorithm],  # one algorithm, from the key type: never the header's choice
            options={"verify_signature": True},  # claims (exp/nbf/iat) are checked by the caller
        )
    except jwt.InvalidAlgorithmError as exc:
        raise JoseError(
            f"the token's algorithm is not {algorithm}, the only one its key allows"
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise JoseError("the signature does not match the payload and key") from exc
    except jwt.PyJWTError as exc:
        raise JoseError(f"the token could not be verified: {exc}") from exc
    try:
        payload = json.loads(decoded["payload"])
    except ValueError as exc:
        raise JoseError("the JWS payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise JoseError("the JWS payload is not a JSON object")
    return payload
