"""Multikey public keys (`publicKeyMultibase`, did:key): multibase base58btc over a multicodec
prefix and the key bytes, for the key types Data Integrity and did:key use here.

A few lines rather than a package: three fixed two-byte varint prefixes and base58btc (the
maintained `base58` package) are all there is to it.
"""

from __future__ import annotations

import base58
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.core.keys import PublicKey

# Multicodec prefixes (unsigned varints) of the public key types did:key and Multikey carry.
ED25519_PUB = b"\xed\x01"
P256_PUB = b"\x80\x24"
P384_PUB = b"\x81\x24"


class MalformedMultikey(ValueError):
    """Not a multibase base58btc Multikey, or the key inside it is malformed."""


class UnsupportedMultikey(ValueError):
    """A well-formed Multikey of a key type this service does not support."""


def decode_public_key(multibase: str) -> PublicKey:
    """The public key of a Multikey ('z' + base58btc(prefix || key)): Ed25519, P-256, P-384."""
    if not isinstance(multibase, str) or not multibase.startswith("z"):
        raise MalformedMultikey("must be multibase base58btc ('z…')")
    try:
        raw = base58.b58decode(multibase[1:])
    except ValueError as exc:
        raise MalformedMultikey("is not valid base58btc") from exc
    try:
        if raw.startswith(ED25519_PUB) and len(raw) == 34:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw[2:])
        if raw.startswith(P256_PUB):
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[2:])
        if raw.startswith(P384_PUB):
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), raw[2:])
    except ValueError as exc:
        raise MalformedMultikey(f"holds a malformed key: {exc}") from exc
    if raw.startswith(ED25519_PUB):
        raise MalformedMultikey("holds an Ed25519 key of the wrong length")
    raise UnsupportedMultikey("holds a key type this service does not support")


def encode_public_key(key: PublicKey) -> str:
    """The Multikey form of an Ed25519, P-256 or P-384 public key (EC keys compressed)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "z" + base58.b58encode(ED25519_PUB + key.public_bytes_raw()).decode("ascii")
    if isinstance(key, ec.EllipticCurvePublicKey):
        prefix = {"secp256r1": P256_PUB, "secp384r1": P384_PUB}.get(key.curve.name)
        if prefix is not None:
            point = key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
            return "z" + base58.b58encode(prefix + point).decode("ascii")
    raise UnsupportedMultikey(f"no Multikey form for {type(key).__name__} here")
