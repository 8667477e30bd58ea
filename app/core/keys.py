"""Signing keys: generation, JWK export, and the at-rest key store (PKCS#8 PEM files, 0600)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.core.errors import ServiceUnavailable

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


class UnusableKey(Exception):
    """A key that cannot be used: malformed, of an unsupported type, or unreadable."""


class UnsupportedKey(UnusableKey):
    """A well-formed key of a type or curve this service does not support (secp256k1, X25519…):
    a verifier cannot check it, which is not the same as finding it wrong."""


class KeyStoreUnavailable(ServiceUnavailable):
    """Our own signing key cannot be read or written (wrong passphrase, a corrupt, missing or
    unreadable key file, a read-only or full keys folder): the operator's fault to fix, a 503
    for the client. `ref` names the key; the details go to the log, not to the client."""

    part = "key_store"

    def __init__(self, ref: str | None, reason: str, *, writing: bool = False) -> None:
        super().__init__(
            "The signing key store is unavailable; try again later.",
            log_detail=f"key {ref}: {reason}" if ref else reason,
        )
        self.ref = ref
        self.reason = reason
        self.writing = writing


class SigningAlgorithm(StrEnum):
    """Algorithms our own issuers sign with (verification accepts a few more)."""

    ES256 = "ES256"
    EdDSA = "EdDSA"
    RS256 = "RS256"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(size, "big"))


def generate_private_key(algorithm: SigningAlgorithm) -> PrivateKey:
    if algorithm is SigningAlgorithm.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is SigningAlgorithm.EdDSA:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public key as a JWK holding only the members RFC 7638 thumbprints are taken over."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            key.curve.name
        )
        if name is None:
            raise UnusableKey(f"unsupported curve {key.curve.name}")
        size = _CURVES[name][1]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": name,
            "x": _int_b64(numbers.x, size),
            "y": _int_b64(numbers.y, size),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {"kty": "RSA", "n": _int_b64(rsa_numbers.n), "e": _int_b64(rsa_numbers.e)}
    raise UnusableKey(f"unsupported key type {type(key).__name__}")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url): a stable key id derived from the key itself."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    members = required.get(str(jwk.get("kty")))
    if members is None:
        raise UnusableKey(f"unsupported JWK key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_key_from_jwk(jwk: Any) -> PublicKey:
    """Parse a public JWK (EC P-256/384/521, Ed25519, RSA >= 2048 bits); private members are ignored."""
    if not isinstance(jwk, dict):
        raise UnusableKey("a JWK must be a JSON object")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            curve = _CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise UnsupportedKey(f"unsupported EC curve {jwk.get('crv')!r}")
            curve_cls, size = curve
            x, y = b64url_decode(str(jwk["x"])), b64url_decode(str(jwk["y"]))
            if len(x) != size or len(y) != size:
                raise UnusableKey("EC key coordinates have the wrong length")
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve_cls()
            ).public_key()
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise UnsupportedKey(f"unsupported OKP curve {jwk.get('crv')!r}")
            return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
            e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
            if n.bit_length() < 2048:
                raise UnusableKey("RSA keys shorter than 2048 bits are refused")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except UnusableKey:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise UnusableKey(f"malformed {kty} JWK: {exc}") from exc
    raise UnsupportedKey(f"unsupported JWK key type {kty!r}")


class KeyStore:
    """Private keys on disk, one PKCS#8 PEM per key, encrypted when a passphrase is set.

    The folder is created 0700 and every key file 0600: nobody else on the host reads them.
    Parsed keys are cached: loading a PEM (and decrypting it) costs far more than a signature.
    A key that cannot be read or written raises KeyStoreUnavailable; the store remembers the
    last such fault (for /health) until that key is read, or a key written, again.
    """

    def __init__(self, directory: Path, passphrase: str | None) -> None:
        self.directory = directory
        self._passphrase = passphrase.encode() if passphrase else None
        self._cache: dict[str, PrivateKey] = {}
        self._lock = threading.Lock()
        self._sealing_keys: dict[bytes, bytes] = {}
        self.fault: KeyStoreUnavailable | None = None

    def path_for(self, ref: str) -> Path:
        if "/" in ref or "\\" in ref or ref.startswith("."):
            raise UnusableKey("invalid key reference")
        return self.directory / f"{ref}.pem"

    def _failed(
        self, ref: str | None, reason: str, *, writing: bool = False
    ) -> KeyStoreUnavailable:
        self.fault = KeyStoreUnavailable(ref, reason, writing=writing)
        return self.fault

    def save(self, ref: str, key: PrivateKey) -> Path:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase
            else serialization.NoEncryption()
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        path = self.path_for(ref)
        tmp = path.with_suffix(".pem.tmp")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # a partial file of a full disk
            raise self._failed(
                ref,
                f"the key file cannot be written to {self.directory}: {exc.strerror or exc}",
                writing=True,
            ) from exc
        with self._lock:
            self._cache[ref] = key
            if self.fault is not None and self.fault.writing:
                self.fault = None
        return path

    def load(self, ref: str) -> PrivateKey:
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        key = self._read(ref)
        with self._lock:
            self._cache[ref] = key
            if self.fault is not None and self.fault.ref == ref:
                self.fault = None
        return key

    def _read(self, ref: str) -> PrivateKey:
        """The key as stored now (never the cache)."""
        path = self.path_for(ref)
        try:
            pem = path.read_bytes()
        except FileNotFoundError as exc:
            raise self._failed(ref, f"the key file is missing from {self.directory}") from exc
        except OSError as exc:
            raise self._failed(ref, f"the key file cannot be read: {exc.strerror or exc}") from exc
        encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
        if encrypted and self._passphrase is None:
            raise self._failed(ref, "the key file is encrypted and no passphrase is set")
        try:
            key = serialization.load_pem_private_key(
                pem, password=self._passphrase if encrypted else None
            )
        except (ValueError, TypeError) as exc:
            reason = (
                "the key file does not decrypt (wrong passphrase or corrupt file)"
                if encrypted
                else "the key file is corrupt"
            )
            raise self._failed(ref, reason) from exc
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        ):
            raise self._failed(ref, "the key has an unsupported type")
        return key

    def check(self) -> str | None:
        """Why the store cannot serve now, or None (for /health: cheap, no decryption unless a
        key failed before, which is then read again so that a restored file clears the fault)."""
        if not self.directory.exists():
            # Created with the first key: fine as long as it can be.
            parent = next((p for p in self.directory.absolute().parents if p.exists()), None)
            if parent is None or not os.access(parent, os.W_OK | os.X_OK):
                return f"the keys folder {self.directory} does not exist and cannot be created"
            return None
        if not self.directory.is_dir():
            return f"the keys folder {self.directory} is not a folder"
        if not os.access(self.directory, os.R_OK | os.W_OK | os.X_OK):
            return f"the keys folder {self.directory} is not readable and writable"
        fault = self.fault
        if fault is None:
            return None
        if fault.writing:
            probe = self.directory / f".probe-{os.getpid()}-{threading.get_ident()}"
            try:
                probe.write_bytes(b"probe")
                probe.unlink()
            except OSError as exc:
                return f"the keys folder {self.directory} cannot be written: {exc.strerror or exc}"
            with self._lock:
                if self.fault is fault:
                    self.fault = None
            return None
        if fault.ref is None:
            return fault.log_detail
        try:
            self.load(fault.ref)
        except KeyStoreUnavailable as again:
            return again.log_detail
        return None

    def delete(self, ref: str) -> None:
        with self._lock:
            self._cache.pop(ref, None)
        self.path_for(ref).unlink(missing_ok=True)

    # --- small secrets kept in the database (webhook signing secrets) ----------------------------

    def seal(self, secret: str, *, context: str) -> str:
        """`secret` encrypted under the keys passphrase, for storage (see `seal_secret`);
        as it is when no passphrase is set (development, like the key files)."""
        return seal_secret(self._passphrase, secret, context=context)

    def unseal(self, stored: str, *, context: str) -> str:
        """The secret `seal` stored (a value stored in clear is returned as it is)."""
        return unseal_secret(self._passphrase, stored, context=context, cache=self._sealing_keys)

    @property
    def encrypts(self) -> bool:
        return self._passphrase is not None

    def unencrypted_keys(self) -> list[Path]:
        """PEM files stored in clear: refused at start-up in production."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.glob("*.pem")
            if b"ENCRYPTED" not in p.read_bytes().split(b"\n", 1)[0]
        )


# --- sealed secrets -----------------------------------------------------------------------------

SEALED_PREFIX = "enc1$"
_SALT_BYTES = 16
_NONCE_BYTES = 12


def _sealing_key(passphrase: bytes, salt: bytes) -> bytes:
    # The passphrase may be a phrase a person chose: scrypt, as for a password (RFC 7914's
    # interactive-login cost), then AES-256-GCM; one random salt per sealed value.
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase)


def seal_secret(passphrase: bytes | None, secret: str, *, context: str) -> str:
    """Encrypt a small secret under the keys passphrase (MICROCRED_KEYS_PASSPHRASE, the one that
    encrypts the signing keys): `enc1$<salt>$<nonce>$<ciphertext>`, base64url. `context` (e.g.
    the row's id) is authenticated with it, so a sealed value copied to another row does not open.
    Without a passphrase the secret is returned as it is, as keys are stored in clear then."""
    if passphrase is None:
        return secret
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_sealing_key(passphrase, salt)).encrypt(
        nonce, secret.encode(), context.encode()
    )
    return SEALED_PREFIX + "$".join(b64url(part) for part in (salt, nonce, sealed))


def unseal_secret(
    passphrase: bytes | None, stored: str, *, context: str, cache: dict[bytes, bytes] | None = None
) -> str:
    """The secret `seal_secret` sealed; a value without the prefix was stored in clear.

    `cache` keeps derived keys by salt: scrypt is slow on purpose, and a dispatcher opens the same
    endpoint's secret for every delivery."""
    if not stored.startswith(SEALED_PREFIX):
        return stored
    if passphrase is None:
        raise UnusableKey("a sealed secret needs MICROCRED_KEYS_PASSPHRASE to be read")
    try:
        salt, nonce, sealed = (b64url_decode(p) for p in stored[len(SEALED_PREFIX) :].split("$"))
    except ValueError as exc:
        raise UnusableKey("a sealed secret is malformed") from exc
    key = cache.get(salt) if cache is not None else None
    if key is None:
        key = _sealing_key(passphrase, salt)
        if cache is not None:
            if len(cache) >= 4096:  # rotated-away salts never come back: start over
                cache.clear()
            cache[salt] = key
    try:
        return AESGCM(key).decrypt(nonce, sealed, context.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise UnusableKey("a sealed secret does not open (wrong passphrase?)") from exc
