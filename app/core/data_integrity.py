"""W3C Data Integrity proofs: creating `eddsa-rdfc-2022` proofs and verifying the suites the Open
Badges world uses, as pure functions over a document, a key and a JSON-LD context loader.

Suites (W3C vc-di-eddsa, vc-di-ecdsa):
- `eddsa-rdfc-2022`, `ecdsa-rdfc-2019` (P-256 / SHA-256, P-384 / SHA-384) and the legacy
  `Ed25519Signature2020`: RDFC-1.0 canonical N-Quads of the document and of the proof
  configuration, hashed; the signature is over proofHash || documentHash.
- `eddsa-jcs-2022`, `ecdsa-jcs-2019`: the same over JCS (RFC 8785, the `rfc8785` package).
- `ecdsa-sd-2023`: derived proofs (what a holder discloses) and base proofs (what the issuer
  hands the holder), see `_verify_sd`.

Proof sets and chains (VC Data Integrity §4.4/§4.5): every proof is verified over the document
without any proof, except that a proof naming `previousProof` is verified over the document
holding exactly the proofs it names (which must be there). `created` and `expires` are checked.

What goes wrong is one of two kinds, as everywhere in verification: `ProofInvalid` (the proof is
wrong: a `fail`) and `ProofUnsupported` (a proof type, suite or key we cannot check: an `error`,
never a `fail`). A context that cannot be had is `ContextUnavailable` (also an `error`).
Canonicalisation refuses properties the contexts do not define (`ContextLoader.canonize`): they
would be dropped from the N-Quads, so a signature over them would prove nothing about them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import base58
import cbor2
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from app.core import multikey
from app.core.jsonld import ContextLoader, ContextUnavailable, InvalidJsonLd
from app.core.keys import PublicKey

__all__ = [
    "ISSUED_SUITE",
    "SUPPORTED",
    "ContextUnavailable",
    "Proof",
    "ProofInvalid",
    "ProofUnsupported",
    "Stages",
    "add_proof",
    "proofs_of",
    "stages",
    "suite_of",
    "unsecured",
    "verification_input",
    "verify_proof",
]

ISSUED_SUITE = "eddsa-rdfc-2022"
DATA_INTEGRITY_PROOF = "DataIntegrityProof"
ED25519_2020 = "Ed25519Signature2020"
RDFC = frozenset({"eddsa-rdfc-2022", "ecdsa-rdfc-2019", ED25519_2020})
JCS = frozenset({"eddsa-jcs-2022", "ecdsa-jcs-2019"})
SD = "ecdsa-sd-2023"
SUPPORTED = RDFC | JCS | {SD}
# A proof `created` this far ahead of our clock is taken as a clock difference, not a lie.
CLOCK_SKEW = timedelta(minutes=5)
_SD_BASE_HEADER = b"\xd9\x5d\x00"
_SD_DERIVED_HEADER = b"\xd9\x5d\x01"
_C14N_LABEL = re.compile(r"_:c14n([0-9]+)")
_XSD_DATETIME = re.compile(
    r"^-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


class ProofInvalid(Exception):
    """The proof is malformed, does not match the document, or its signature is wrong."""


class ProofUnsupported(Exception):
    """A proof type, cryptosuite or key type this verifier cannot check (not a failure)."""


Proof = dict[str, Any]


@dataclass(frozen=True)
class Stages:
    """Each intermediate value of a proof over a document, as the W3C test vectors give them."""

    canonical_document: str
    document_hash: bytes
    canonical_proof_config: str
    proof_hash: bytes

    @property
    def hash_data(self) -> bytes:
        """What is signed: proofHash || documentHash."""
        return self.proof_hash + self.document_hash


# --- reading proofs -----------------------------------------------------------------------------


def proofs_of(document: dict[str, Any]) -> list[Any]:
    """The document's embedded proofs (a proof set is a list; one proof may stand alone)."""
    proof = document.get("proof")
    if proof is None:
        return []
    return list(proof) if isinstance(proof, list) else [proof]


def suite_of(proof: Any) -> str:
    """The suite of a proof: its cryptosuite for a DataIntegrityProof, else its type."""
    if not isinstance(proof, dict):
        return repr(type(proof).__name__)
    if proof.get("type") == DATA_INTEGRITY_PROOF:
        suite = proof.get("cryptosuite")
        return suite if isinstance(suite, str) else "DataIntegrityProof without a cryptosuite"
    kind = proof.get("type")
    return kind if isinstance(kind, str) else "a proof without a type"


def unsecured(document: dict[str, Any]) -> dict[str, Any]:
    """The document without its proofs."""
    return {k: v for k, v in document.items() if k != "proof"}


def verification_input(document: dict[str, Any], proof: Proof) -> dict[str, Any]:
    """The document a proof was made over: no proofs, or (a chain) just the ones it names.

    ProofInvalid if a `previousProof` is not in the document."""
    base = unsecured(document)
    previous = proof.get("previousProof")
    if previous is None:
        return base
    names = [previous] if isinstance(previous, str) else previous
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ProofInvalid("previousProof must be a proof id or a list of proof ids")
    others = [p for p in proofs_of(document) if isinstance(p, dict) and p is not proof]
    matching: list[Proof] = []
    for name in names:
        found = [p for p in others if p.get("id") == name]
        if len(found) != 1:
            raise ProofInvalid(
                f"the previous proof {name!r} is {'not in the document' if not found else 'not unique'}"
            )
        matching.append(found[0])
    return {**base, "proof": matching}


def _config(document: dict[str, Any], proof: Proof) -> dict[str, Any]:
    """The proof configuration: the proof without its value, in the document's @context.

    A proof that carries its own @context must carry the document's (or a start of it)."""
    options = {k: v for k, v in proof.items() if k != "proofValue"}
    doc_context = document.get("@context")
    own = options.get("@context")
    if own is not None:
        doc_list = doc_context if isinstance(doc_context, list) else [doc_context]
        own_list = own if isinstance(own, list) else [own]
        if doc_list[: len(own_list)] != own_list:
            raise ProofInvalid("the proof's @context is not the document's")
    if doc_context is not None:
        options["@context"] = doc_context
    return options


# --- canonicalisation and hashing ---------------------------------------------------------------


def _hash_for(suite: str, key_curve: str | None) -> Callable[[bytes], bytes]:
    if key_curve == "secp384r1" and suite in {"ecdsa-rdfc-2019", "ecdsa-jcs-2019"}:
        return lambda data: hashlib.sha384(data).digest()
    return lambda data: hashlib.sha256(data).digest()


def _canonical(suite: str, document: dict[str, Any], loader: ContextLoader) -> str:
    if suite in JCS:
        try:
            return rfc8785.dumps(document).decode("utf-8")
        except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
            raise ProofInvalid(f"the document has no JCS form: {exc}") from exc
    try:
        return loader.canonize(document)
    except InvalidJsonLd as exc:
        raise ProofInvalid(f"the document cannot be canonicalised (RDFC-1.0): {exc}") from exc


def stages(
    document: dict[str, Any],
    proof: Proof,
    *,
    loader: ContextLoader,
    key_curve: str | None = None,
) -> Stages:
    """The canonical forms and hashes of a proof over `document` (given without that proof).

    `key_curve` picks SHA-384 for P-384 keys of the ECDSA suites."""
    suite = suite_of(proof)
    config = _config(document, proof)
    digest = _hash_for(suite, key_curve)
    canonical_document = _canonical(suite, document, loader)
    canonical_config = _canonical(suite, config, loader)
    return Stages(
        canonical_document=canonical_document,
        document_hash=digest(canonical_document.encode("utf-8")),
        canonical_proof_config=canonical_config,
        proof_hash=digest(canonical_config.encode("utf-8")),
    )


# --- creating a proof ---------------------------------------------------------------------------


def add_proof(
    document: dict[str, Any],
    *,
    key: ed25519.Ed25519PrivateKey,
    verification_method: str,
    created: datetime,
    loader: ContextLoader,
    proof_id: str | None = None,
) -> dict[str, Any]:
    """`document` with an `eddsa-rdfc-2022` DataIntegrityProof (assertionMethod) added.

    A proof already there stays: the new one joins the proof set."""
    proof: Proof = {
        "type": DATA_INTEGRITY_PROOF,
        "cryptosuite": ISSUED_SUITE,
        "created": created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "verificationMethod": verification_method,
        "proofPurpose": "assertionMethod",
    }
    if proof_id is not None:
        proof = {"id": proof_id, **proof}
    try:
        parts = stages(unsecured(document), proof, loader=loader)
    except ProofInvalid as exc:
        # Our own credentials are built to canonicalise; one that does not is a bug, loudly.
        raise ValueError(str(exc)) from exc
    signature = key.sign(parts.hash_data)
    proof["proofValue"] = "z" + base58.b58encode(signature).decode("ascii")
    existing = proofs_of(document)
    return {**document, "proof": [*existing, proof] if existing else proof}


# --- verifying a proof --------------------------------------------------------------------------


def check_proof_shape(proof: Any, *, now: datetime, purpose: str = "assertionMethod") -> str:
    """The proof's suite, once its type, purpose, method and dates are acceptable.

    ProofUnsupported for a type or suite we cannot check; ProofInvalid for the rest."""
    if not isinstance(proof, dict):
        raise ProofInvalid("a proof must be a JSON object")
    suite = suite_of(proof)
    kind = proof.get("type")
    if kind == DATA_INTEGRITY_PROOF:
        if suite not in SUPPORTED or suite == ED25519_2020:
            raise ProofUnsupported(f"the cryptosuite {suite!r} is not supported by this verifier")
    elif kind != ED25519_2020:
        raise ProofUnsupported(f"the proof type {suite!r} is not supported by this verifier")
    if proof.get("proofPurpose") != purpose:
        raise ProofInvalid(
            f"the proof's purpose is {proof.get('proofPurpose')!r}, not {purpose!r}: it does not assert the credential"
        )
    if not isinstance(proof.get("verificationMethod"), str) or not proof["verificationMethod"]:
        raise ProofInvalid("the proof names no verificationMethod")
    if not isinstance(proof.get("proofValue"), str) or not proof["proofValue"]:
        raise ProofInvalid("the proof has no proofValue")
    created = _date(proof, "created")
    if created is not None and created > now + CLOCK_SKEW:
        raise ProofInvalid(f"the proof was created in the future ({proof['created']})")
    expires = _date(proof, "expires")
    if expires is not None and expires < now:
        raise ProofInvalid(f"the proof expired on {proof['expires']}")
    if kind == ED25519_2020 and created is None:
        raise ProofInvalid("an Ed25519Signature2020 proof must say when it was created")
    return suite


def _date(proof: Proof, name: str) -> datetime | None:
    value = proof.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _XSD_DATETIME.match(value):
        raise ProofInvalid(f"the proof's {name} is not a date-time with a time zone: {value!r}")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProofInvalid(f"the proof's {name} is not a valid date-time: {value!r}") from exc


def verify_proof(
    document: dict[str, Any],
    proof: Proof,
    *,
    key: PublicKey,
    loader: ContextLoader,
    now: datetime | None = None,
) -> str:
    """Verify one embedded proof of `document` with the verification method's public key.

    Returns the suite. Raises ProofInvalid, ProofUnsupported or ContextUnavailable."""
    suite = check_proof_shape(proof, now=now or datetime.now(UTC))
    source = verification_input(document, proof)
    if suite == SD:
        _verify_sd(source, proof, key=key, loader=loader)
        return suite
    signature = _signature_bytes(proof["proofValue"])
    if suite in {"eddsa-rdfc-2022", "eddsa-jcs-2022", ED25519_2020}:
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ProofInvalid(
                f"{suite} needs an Ed25519 key, and the verification method is not one"
            )
        parts = stages(source, proof, loader=loader)
        try:
            key.verify(signature, parts.hash_data)
        except InvalidSignature as exc:
            raise ProofInvalid("the signature does not match the credential") from exc
        return suite
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in {
        "secp256r1",
        "secp384r1",
    }:
        raise ProofInvalid(
            f"{suite} needs a P-256 or P-384 key, and the verification method is not one"
        )
    parts = stages(source, proof, loader=loader, key_curve=key.curve.name)
    _ecdsa_verify(key, signature, parts.hash_data)
    return suite


def _signature_bytes(proof_value: str) -> bytes:
    if not proof_value.startswith("z"):
        raise ProofInvalid("the proofValue must be multibase base58btc ('z…')")
    try:
        return base58.b58decode(proof_value[1:])
    except ValueError as exc:
        raise ProofInvalid("the proofValue is not valid base58btc") from exc


def _ecdsa_verify(key: ec.EllipticCurvePublicKey, raw: bytes, data: bytes) -> None:
    """An IEEE P1363 (r || s) ECDSA signature, the curve's own hash over `data`."""
    size = (key.curve.key_size + 7) // 8
    if len(raw) != 2 * size:
        raise ProofInvalid("the signature does not match the credential (wrong length)")
    algorithm: hashes.HashAlgorithm = (
        hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    )
    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(algorithm))
    except InvalidSignature as exc:
        raise ProofInvalid("the signature does not match the credential") from exc


def ecdsa_raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """An IEEE P1363 ECDSA signature (tests and tools make proofs with it)."""
    size = (key.curve.key_size + 7) // 8
    algorithm: hashes.HashAlgorithm = (
        hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    )
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# --- ecdsa-sd-2023 ------------------------------------------------------------------------------


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sd_components(proof_value: str) -> tuple[bool, list[Any]]:
    """(is_base, CBOR components) of an ecdsa-sd-2023 proofValue ('u' + base64url, tagged)."""
    if not proof_value.startswith("u"):
        raise ProofInvalid("an ecdsa-sd-2023 proofValue must be multibase base64url ('u…')")
    try:
        raw = _b64url_decode(proof_value[1:])
    except ValueError as exc:
        raise ProofInvalid("the proofValue is not valid base64url") from exc
    header, body = raw[:3], raw[3:]
    if header not in {_SD_BASE_HEADER, _SD_DERIVED_HEADER}:
        raise ProofInvalid("the proofValue is neither an ecdsa-sd-2023 base nor a derived proof")
    try:
        components = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ProofInvalid("the proofValue is not valid CBOR") from exc
    if not isinstance(components, list) or len(components) != 5:
        raise ProofInvalid("the proofValue does not hold the five ecdsa-sd-2023 components")
    return header == _SD_BASE_HEADER, components


def _sd_relabel(nquads: str, label: Callable[[str], str]) -> list[str]:
    """Canonical N-Quads with each `_:c14nN` replaced by `label("c14nN")`, sorted, one per line."""
    lines = [line + "\n" for line in nquads.splitlines() if line]
    return sorted(
        _C14N_LABEL.sub(lambda m: "_:" + label("c14n" + m.group(1)), line) for line in lines
    )


def _verify_sd(
    document: dict[str, Any], proof: Proof, *, key: PublicKey, loader: ContextLoader
) -> None:
    """ecdsa-sd-2023 (vc-di-ecdsa §3.4-3.5).

    A derived proof (what a holder discloses) carries the issuer's base signature, the ephemeral
    public key, one signature per non-mandatory statement, the label map and the mandatory
    indexes: the statements are canonicalised, relabelled, split into mandatory (hashed into
    what the base signature covers) and the rest (each checked with the ephemeral key).

    A base proof (what the issuer gives the holder) carries the HMAC key instead of a label map,
    and the mandatory pointers. The mandatory statements are exactly those that no per-statement
    signature covers (each signature signs one statement, in order, and statements are
    distinct), so they are found by the signatures, without selecting by the pointers: the
    pointers are not signed, and the base signature proves the mandatory set either way."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ProofUnsupported("ecdsa-sd-2023 is checked here with P-256 issuer keys only")
    is_base, parts = _sd_components(proof["proofValue"])
    # base: [baseSignature, publicKey, hmacKey, signatures, mandatoryPointers];
    # derived: [baseSignature, publicKey, signatures, labelMap, mandatoryIndexes].
    if is_base:
        base_signature, public_key, hmac_key, signatures, _pointers = parts
    else:
        base_signature, public_key, signatures, label_map, indexes = parts
    if not isinstance(base_signature, bytes) or not isinstance(public_key, bytes):
        raise ProofInvalid("the ecdsa-sd-2023 proofValue is malformed")
    if not isinstance(signatures, list) or not all(isinstance(s, bytes) for s in signatures):
        raise ProofInvalid("the ecdsa-sd-2023 signatures are malformed")
    try:
        ephemeral = multikey.decode_public_key("z" + base58.b58encode(public_key).decode("ascii"))
    except (multikey.MalformedMultikey, multikey.UnsupportedMultikey) as exc:
        raise ProofInvalid(f"the ecdsa-sd-2023 ephemeral key {exc}") from exc
    if not isinstance(ephemeral, ec.EllipticCurvePublicKey) or ephemeral.curve.name != "secp256r1":
        raise ProofInvalid("the ecdsa-sd-2023 ephemeral key is not a P-256 key")
    config = _config(document, proof)
    canonical_config = _canonical("ecdsa-rdfc-2019", config, loader)
    proof_hash = hashlib.sha256(canonical_config.encode("utf-8")).digest()
    nquads = _canonical("ecdsa-rdfc-2019", document, loader)

    if is_base:
        if not isinstance(hmac_key, bytes) or len(hmac_key) != 32:
            raise ProofInvalid("the ecdsa-sd-2023 HMAC key is malformed")
        mandatory = sd_base_mandatory(sd_hmac_statements(nquads, hmac_key), signatures, ephemeral)
    else:
        if not isinstance(label_map, dict) or not all(
            isinstance(k, int) and isinstance(v, bytes) for k, v in label_map.items()
        ):
            raise ProofInvalid("the ecdsa-sd-2023 label map is malformed")
        if not isinstance(indexes, list) or not all(isinstance(i, int) for i in indexes):
            raise ProofInvalid("the ecdsa-sd-2023 mandatory indexes are malformed")
        labels = {f"c14n{k}": "u" + _b64url(v) for k, v in label_map.items()}

        def relabel(c14n: str) -> str:
            if c14n not in labels:
                raise ProofInvalid(
                    "the disclosed document has a blank node the label map does not name"
                )
            return labels[c14n]

        statements = _sd_relabel(nquads, relabel)
        wanted = set(indexes)
        mandatory = [s for i, s in enumerate(statements) if i in wanted]
        optional = [s for i, s in enumerate(statements) if i not in wanted]
        if len(optional) != len(signatures):
            raise ProofInvalid(
                "the signature does not match the credential (wrong number of statement signatures)"
            )
        for statement, signature in zip(optional, signatures, strict=True):
            if not _ecdsa_ok(ephemeral, signature, statement.encode("utf-8")):
                raise ProofInvalid(
                    "the signature does not match the credential (a disclosed statement)"
                )
    sd_check_base_signature(key, base_signature, proof_hash, public_key, mandatory)


def sd_hmac_statements(nquads: str, hmac_key: bytes) -> list[str]:
    """A base proof's statements: blank nodes relabelled by HMAC-SHA256 of their c14n label."""
    return _sd_relabel(
        nquads,
        lambda c14n: "u" + _b64url(hmac.new(hmac_key, c14n.encode(), "sha256").digest()),
    )


def sd_base_mandatory(
    statements: list[str], signatures: list[bytes], ephemeral: ec.EllipticCurvePublicKey
) -> list[str]:
    """The mandatory statements of a base proof: those no per-statement signature covers.

    The signatures sign the non-mandatory statements in their sorted order; a signature can
    match only its own statement, so one pass pairs them. ProofInvalid if one is left over."""
    mandatory: list[str] = []
    left = list(signatures)
    for statement in statements:
        if left and _ecdsa_ok(ephemeral, left[0], statement.encode("utf-8")):
            left.pop(0)
        else:
            mandatory.append(statement)
    if left:
        raise ProofInvalid(
            "the signature does not match the credential (a statement signature is unmatched)"
        )
    return mandatory


def sd_check_base_signature(
    key: ec.EllipticCurvePublicKey,
    base_signature: bytes,
    proof_hash: bytes,
    public_key: bytes,
    mandatory: list[str],
) -> None:
    """The issuer's signature over proofHash || ephemeral public key || mandatoryHash."""
    mandatory_hash = hashlib.sha256("".join(mandatory).encode("utf-8")).digest()
    if not _ecdsa_ok(key, base_signature, proof_hash + public_key + mandatory_hash):
        raise ProofInvalid(
            "the signature does not match the credential (the issuer's base signature)"
        )


def _ecdsa_ok(key: ec.EllipticCurvePublicKey, raw: bytes, data: bytes) -> bool:
    try:
        _ecdsa_verify(key, raw, data)
    except ProofInvalid:
        return False
    return True
