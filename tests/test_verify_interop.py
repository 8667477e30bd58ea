"""Verifying what other issuers produce: 1EdTech fixtures, VC-JOSE-COSE vectors, offline DIDs.

Nothing here opens a network connection: the foreign keys travel inside the token (`jwk`), inside
the identifier (did:key, did:jwk), or come from the test vectors' own key files.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import base58
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.warnings import InsecureKeyLengthWarning
from PIL import Image, PngImagePlugin
from sqlalchemy.orm import Session

from app.core import jose
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.core.keys import PrivateKey, PublicKey, b64url, b64url_decode, public_jwk
from app.core.keys import public_key_from_jwk as parse_jwk
from app.verify.keys import TrustedKey
from app.verify.service import Verifier
from conftest import STANDARDS, World, check, ob_credential

OB30 = STANDARDS / "validator-fixtures" / "ob30"
VECTORS = STANDARDS / "vc-jose-cose-vectors"
OB_NS = "https://purl.imsglobal.org/ob/v3p0"


# --- did:key, built by hand -------------------------------------------------------------------


def varint(value: int) -> bytes:
    """Unsigned LEB128, the encoding of multicodec prefixes."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


MULTICODEC_ED25519_PUB = 0xED
MULTICODEC_P256_PUB = 0x1200
MULTICODEC_P384_PUB = 0x1201


def did_key(public: PublicKey) -> str:
    """did:key of an Ed25519, P-256 or P-384 public key: 'z' + base58btc(multicodec || key)."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        code = MULTICODEC_ED25519_PUB
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        code = {"secp256r1": MULTICODEC_P256_PUB, "secp384r1": MULTICODEC_P384_PUB}[
            public.curve.name
        ]
        raw = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
    else:
        raise TypeError(type(public))
    return "did:key:z" + base58.b58encode(varint(code) + raw).decode("ascii")


def did_key_url(public: PublicKey) -> str:
    did = did_key(public)
    return f"{did}#{did[len('did:key:') :]}"


def did_jwk(public: PublicKey) -> str:
    return "did:jwk:" + b64url(json.dumps(public_jwk(public), separators=(",", ":")).encode())


def test_did_key_encoding_matches_the_method_prefixes() -> None:
    """Sanity check of the hand-built multibase: the well-known 'z6Mk' and 'zDn' prefixes."""
    assert varint(MULTICODEC_ED25519_PUB) == b"\xed\x01"
    assert varint(MULTICODEC_P256_PUB) == b"\x80\x24"
    assert did_key(ed25519.Ed25519PrivateKey.generate().public_key()).startswith("did:key:z6Mk")
    assert did_key(ec.generate_private_key(ec.SECP256R1()).public_key()).startswith("did:key:zDn")
    assert did_key(ec.generate_private_key(ec.SECP384R1()).public_key()).startswith("did:key:z82")


# --- a. 1EdTech validator fixtures ------------------------------------------------------------


def png_credential(path: Path) -> str:
    with Image.open(path) as image:
        assert isinstance(image, PngImagePlugin.PngImageFile), path
        image.load()  # iTXt chunks after the image data are only read with the pixels
        text = image.text["openbadgecredential"]  # the iTXt chunk of OB 3.0 baking
    assert isinstance(text, str)
    return text


def svg_credential(path: Path) -> str:
    # A trusted fixture from the 1EdTech validator; expat never fetches the DOCTYPE's external DTD.
    root = ET.parse(path).getroot()  # noqa: S314 - trusted local test fixture, no entities
    element = root.find(f"{{{OB_NS}}}credential")
    assert element is not None, f"no <openbadges:credential> in {path.name}"
    verify = element.get("verify")
    assert verify, f"<openbadges:credential> in {path.name} has no verify attribute"
    return verify


BAKED = {
    "simple-jwt.png": png_credential,
    "simple-jwt_v1.png": png_credential,
    "simple-jwt.svg": svg_credential,
    "simple-jwt_v1.svg": svg_credential,
}


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(b64url_decode(token.split(".")[0]))
    return header


@pytest.mark.parametrize("name", sorted(BAKED))
def test_1edtech_baked_jwt_with_embedded_jwk_is_not_verified(world: World, name: str) -> None:
    """The validator's baked JWT fixtures sign an https issuer id with a key in the header: a key
    anyone could have put there, so it never speaks for `https://1edtech.edu/…`. The VCDM 2.0
    one also has no `sub` (it uses `aud`), which OB 3.0 §8.2.4.1 requires."""
    token = BAKED[name](OB30 / name)
    header = header_of(token)
    assert header["alg"] == "RS256"
    assert header["jwk"]["kty"] == "RSA"
    result = world.verify(token)
    assert result["verified"] is False, result
    assert result["status"] == "invalid"
    legacy = name.endswith("_v1.png") or name.endswith("_v1.svg")
    if legacy:
        assert check(result, "signature")["result"] == "pass"
        assert "embedded" in check(result, "signature")["detail"]
        assert check(result, "issuer")["result"] == "fail"
        assert result["credential"]["issuer"]["id"].startswith("https://")
    else:
        assert check(result, "format")["result"] == "fail"
        assert "'sub' claim is missing" in check(result, "format")["detail"]


def test_1edtech_baked_jwt_tampered_fails(world: World) -> None:
    token = png_credential(OB30 / "simple-jwt.png")
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["name"] = "Tampered Badge"
    forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    result = world.verify(forged)
    assert result["verified"] is False
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] != "pass"


def fixture_rsa_keys() -> list[PublicKey]:
    """Every RSA key the OB 3.0 fixtures carry (the baked credentials' jwk headers)."""
    keys: dict[str, PublicKey] = {}
    for name, extract in BAKED.items():
        jwk = header_of(extract(OB30 / name)).get("jwk")
        if isinstance(jwk, dict) and jwk.get("kty") == "RSA":
            keys[jwk["n"]] = parse_jwk(jwk)
    return list(keys.values())


def test_1edtech_simple_jwt_names_no_key(world: World) -> None:
    """simple.jwt has neither kid nor jwk, and an https issuer: no key can be found offline.

    None of the RSA keys in the other fixtures verifies it either (checked below), so the only
    honest answer is a signature `error` and status `unknown`, never `valid` nor `invalid`.
    """
    token = (OB30 / "simple.jwt").read_text().strip()
    header = header_of(token)
    assert "kid" not in header
    assert "jwk" not in header
    keys = fixture_rsa_keys()
    assert keys
    for key in keys:
        with pytest.raises(jose.JoseError):
            jose.verify(token, key)
    result = world.verify(token)
    assert result["verified"] is False
    assert result["status"] == "unknown", result
    signature = check(result, "signature")
    assert signature["result"] == "error", result
    assert "names no key" in signature["detail"]
    assert check(result, "format")["result"] == "pass"  # a legacy VCDM 1.1 'vc' claim token
    assert result["credential"]["issuer"]["id"] == "https://example.edu/issuers/565049"


# --- b. W3C VC-JOSE-COSE test vectors ---------------------------------------------------------

_ENTRY = re.compile(r"'(?P<title>\d+\.[^']*)':\s*\{(?P<body>[^{}]*)\}", re.S)
_FIELD = re.compile(r"'(?P<key>\w+)':\s*(?P<value>'[^']*'|\d+|[\w.]+)")
_CONST = re.compile(r"const (?P<name>\w+) = \{(?P<body>[^{}]*)\}", re.S)


def _mapping_constants(source: str) -> dict[str, dict[str, str]]:
    constants: dict[str, dict[str, str]] = {}
    for match in _CONST.finditer(source):
        members = re.findall(r"(\w+):\s*'([^']*)'", match["body"])
        constants[match["name"]] = dict(members)
    return constants


def vc_jose_cose_vectors() -> list[dict[str, Any]]:
    """The entries of test-mapping.js (JOSE, SD-JWT and COSE mappings), references resolved."""
    source = (VECTORS / "test-mapping.js").read_text()
    constants = _mapping_constants(source)
    vectors = []
    for section in re.finditer(r"export const (\w+TestMapping) = \{(.*?)\n\};", source, re.S):
        for entry in _ENTRY.finditer(section[2]):
            fields: dict[str, Any] = {"mapping": section[1], "title": entry["title"]}
            for item in _FIELD.finditer(entry["body"]):
                raw = item["value"]
                if raw.startswith("'"):
                    value: Any = raw.strip("'")
                elif raw.isdigit():
                    value = int(raw)
                else:
                    const, _, member = raw.partition(".")
                    value = constants[const][member]
                fields[item["key"]] = value
            vectors.append(fields)
    return vectors


VC_VECTORS = vc_jose_cose_vectors()


def _vector_param(vector: dict[str, Any]) -> Any:
    marks = []
    feature, fn = vector["feature"], vector["fn"]
    if fn != "verify":
        marks.append(
            pytest.mark.skip(reason="an issuance vector: it tests an issuer, not a verifier")
        )
    elif feature.startswith("presentation_"):
        marks.append(
            pytest.mark.skip(reason="presentations (VP) are out of scope of this verifier")
        )
    elif feature != "credential_jose":
        marks.append(
            pytest.mark.skip(reason=f"{feature}: SD-JWT and COSE securing are out of scope")
        )
    return pytest.param(vector, id=f"{vector['number']}-{feature}-{fn}", marks=marks)


def test_vc_jose_cose_mapping_was_parsed() -> None:
    numbers = {v["number"]: v for v in VC_VECTORS}
    jose_verify = sorted(
        n for n, v in numbers.items() if v["feature"] == "credential_jose" and v["fn"] == "verify"
    )
    assert jose_verify == [6, 8, 9, 10, 12, 13, 15]
    assert numbers[6]["key_file"] == "vm-p256.json"
    assert numbers[6]["expected_result"] == "success"
    assert numbers[13]["expected_result"] == "failure"


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            yield s
    finally:
        engine.dispose()


def verification_method(key_file: str) -> dict[str, Any]:
    vm: dict[str, Any] = json.loads((VECTORS / key_file).read_text())
    return vm


@pytest.mark.parametrize("vector", [_vector_param(v) for v in VC_VECTORS])
def test_vc_jose_cose_credential_verify_vector(
    session: Session, settings: Settings, vector: dict[str, Any]
) -> None:
    vm = verification_method(vector["key_file"])
    public = {k: v for k, v in vm["publicKeyJwk"].items() if k != "d"}
    trusted = {public["kid"]: TrustedKey(jwk=public, controller=vm["controller"])}
    verifier = Verifier(session=session, settings=settings, trusted_keys=trusted)
    text = (VECTORS / vector["input_file"]).read_text().strip()
    credential: str | dict[str, Any] = json.loads(text) if text.startswith("{") else text
    result = verifier.verify(credential).result()
    expected = vector["expected_result"]
    assert expected in {"success", "failure"}, vector
    assert result.verified is (expected == "success"), (vector["title"], result)


def test_vc_jose_cose_issuer_match_binds_key_to_issuer(
    session: Session, settings: Settings
) -> None:
    """Vector 8 with the key registered under another controller: the issuer check fails."""
    vm = verification_method("vm-ed25519.json")
    jwk = vm["publicKeyJwk"]
    trusted = {jwk["kid"]: TrustedKey(jwk=jwk, controller="https://someone-else.example")}
    verifier = Verifier(session=session, settings=settings, trusted_keys=trusted)
    token = (VECTORS / "credential-issuer-match-signed.txt").read_text().strip()
    result = verifier.verify_jwt(token).result()
    assert result.verified is False
    issuer = next(c for c in result.checks if c.check == "issuer")
    assert issuer.result == "fail"


def test_vc_jose_cose_vector_without_trusted_key_is_unknown(
    session: Session, settings: Settings
) -> None:
    """Without the key file, a bare-thumbprint kid cannot be resolved: error, not invalid."""
    verifier = Verifier(session=session, settings=settings)
    token = (VECTORS / "credential-jose-minimal.txt").read_text().strip()
    result = verifier.verify_jwt(token).result()
    assert result.verified is False
    assert result.status == "unknown"


# --- c. foreign issuers with offline keys -----------------------------------------------------


def signed(payload: dict[str, Any], key: PrivateKey, algorithm: str, **header: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"typ": "JWT", **header})


def assert_verified(result: dict[str, Any]) -> None:
    assert result["verified"] is True, result
    assert result["status"] == "valid"
    for name in ("format", "signature", "issuer", "trust", "validity_period", "schema"):
        assert check(result, name)["result"] == "pass", (name, result)
    assert check(result, "record")["result"] == "skipped"


def assert_genuine_but_unconfirmed(result: dict[str, Any]) -> None:
    """A did:key / did:jwk issuer: the signature and its binding to the id hold, and nobody
    vouches for the name (trust fails, `issuer_unconfirmed`, not verified)."""
    assert result["verified"] is False, result
    assert result["status"] == "issuer_unconfirmed", result
    for name in ("format", "signature", "issuer", "validity_period", "schema"):
        assert check(result, name)["result"] == "pass", (name, result)
    assert check(result, "trust")["result"] == "fail", result
    assert result["credential"]["issuer"]["trust"]["level"] == "self_asserted", result
    assert "self-declared" in check(result, "trust")["detail"]


ALGORITHMS: dict[str, tuple[Any, str]] = {
    "Ed25519": (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    "P-256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    "P-384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
}


@pytest.mark.parametrize("curve", ["Ed25519", "P-256", "P-384"])
def test_did_key_issuer_is_genuine_but_unconfirmed(world: World, curve: str) -> None:
    make, alg = ALGORITHMS[curve]
    key = make()
    did = did_key(key.public_key())
    result = world.verify(signed(ob_credential(did), key, alg, kid=did_key_url(key.public_key())))
    assert_genuine_but_unconfirmed(result)
    assert did in check(result, "issuer")["detail"]


@pytest.mark.parametrize("curve", ["Ed25519", "P-256"])
def test_did_key_issuer_without_kid_is_genuine_but_unconfirmed(world: World, curve: str) -> None:
    make, alg = ALGORITHMS[curve]
    key = make()
    result = world.verify(signed(ob_credential(did_key(key.public_key())), key, alg))
    assert_genuine_but_unconfirmed(result)


@pytest.mark.parametrize("curve", ["Ed25519", "P-256"])
def test_did_key_relative_kid_is_genuine_but_unconfirmed(world: World, curve: str) -> None:
    """kid as a DID URL relative to the issuer ('#z6Mk…'), as some wallets write it."""
    make, alg = ALGORITHMS[curve]
    key = make()
    did = did_key(key.public_key())
    kid = "#" + did[len("did:key:") :]
    result = world.verify(signed(ob_credential(did), key, alg, kid=kid))
    assert_genuine_but_unconfirmed(result)


def test_did_key_kid_naming_another_did_key_fails_issuer(world: World) -> None:
    """Signed (validly) by did:key B, while the credential says it comes from did:key A."""
    a = ed25519.Ed25519PrivateKey.generate()
    b = ed25519.Ed25519PrivateKey.generate()
    token = signed(
        ob_credential(did_key(a.public_key())), b, "EdDSA", kid=did_key_url(b.public_key())
    )
    result = world.verify(token)
    assert result["verified"] is False
    assert result["status"] == "invalid"
    assert check(result, "signature")["result"] == "pass"
    assert check(result, "issuer")["result"] == "fail"


def test_did_key_kid_with_wrong_signing_key_fails_signature(world: World) -> None:
    a = ed25519.Ed25519PrivateKey.generate()
    b = ed25519.Ed25519PrivateKey.generate()
    did = did_key(a.public_key())
    result = world.verify(signed(ob_credential(did), b, "EdDSA", kid=did_key_url(a.public_key())))
    assert result["verified"] is False
    assert check(result, "signature")["result"] == "fail"


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", id="P-256"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "EdDSA", id="Ed25519"),
    ],
)
def test_did_jwk_issuer_is_genuine_but_unconfirmed(world: World, make: Any, alg: str) -> None:
    key = make()
    did = did_jwk(key.public_key())
    result = world.verify(signed(ob_credential(did), key, alg, kid=f"{did}#0"))
    assert_genuine_but_unconfirmed(result)


def test_did_jwk_kid_of_another_did_fails_issuer(world: World) -> None:
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    token = signed(
        ob_credential(did_jwk(a.public_key())), b, "ES256", kid=f"{did_jwk(b.public_key())}#0"
    )
    result = world.verify(token)
    assert result["verified"] is False
    assert check(result, "issuer")["result"] == "fail"


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        pytest.param(
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "RS256",
            id="RS256",
        ),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", id="ES256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", id="ES384"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "EdDSA", id="EdDSA"),
    ],
)
def test_https_issuer_with_embedded_jwk_is_not_the_issuer(
    world: World, make: Any, alg: str
) -> None:
    """A key that travels with the token proves integrity and nothing about an https issuer id:
    anyone can sign "https://www.harvard.edu" that way, so the issuer check fails."""
    key = make()
    token = signed(
        ob_credential("https://foreign.example/issuers/1"),
        key,
        alg,
        jwk=public_jwk(key.public_key()),
    )
    result = world.verify(token)
    assert result["status"] == "invalid", result
    assert "embedded" in check(result, "signature")["detail"]
    assert check(result, "signature")["result"] == "pass"
    assert check(result, "issuer")["result"] == "fail"
    assert check(result, "trust")["result"] == "skipped"
    assert check(result, "status")["result"] == "skipped"


def test_embedded_short_rsa_key_is_refused(world: World) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    with warnings.catch_warnings():
        # PyJWT warns when it signs with a short key; producing one is the point here.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = signed(
            ob_credential("https://foreign.example/issuers/1"),
            key,
            "RS256",
            jwk=public_jwk(key.public_key()),
        )
    result = world.verify(token)
    assert result["verified"] is False
    assert check(result, "signature")["result"] == "fail"


def test_https_kid_is_unknown_without_fetching(world: World) -> None:
    """An HTTPS kid would need a fetch; offline it is an `error` (status unknown), not a pass."""
    key = ec.generate_private_key(ec.SECP256R1())
    token = signed(
        ob_credential("https://foreign.example/issuers/1"),
        key,
        "ES256",
        kid="https://foreign.example/issuers/1/keys/1",
    )
    result = world.verify(token)
    assert result["verified"] is False
    assert result["status"] == "unknown"
    assert check(result, "signature")["result"] == "error"


def test_legacy_vcdm11_vc_claim_token_is_genuine_but_unconfirmed(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    cred_id = f"urn:uuid:{uuid.uuid4()}"
    payload = {
        "vc": {
            "@context": [
                "https://www.w3.org/2018/credentials/v1",
                "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
            ],
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {"id": did, "type": ["Profile"], "name": "Legacy College"},
            "issuanceDate": "2023-05-01T00:00:00Z",
            "name": "Legacy Badge",
            "credentialSubject": {
                "id": "did:example:learner-7",
                "type": ["AchievementSubject"],
                "achievement": {
                    "id": "https://legacy.example/achievements/1",
                    "type": ["Achievement"],
                    "name": "Legacy Badge",
                },
            },
        },
        "iss": did,
        "jti": cred_id,
        "nbf": 1682899200,
        "sub": "did:example:learner-7",
    }
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "issuer_unconfirmed", result  # a did:key: nobody vouches
    assert check(result, "signature")["result"] == "pass"
    assert check(result, "format")["result"] == "pass"
    assert "1.1" in check(result, "format")["detail"]
    assert check(result, "schema")["result"] == "skipped"
    assert result["credential"]["id"] == cred_id  # taken from jti
    assert result["credential"]["achievement"]["name"] == "Legacy Badge"


def test_legacy_vc_claim_expired_by_exp(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    payload = {
        "vc": {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            "type": ["VerifiableCredential"],
            "issuer": did,
            "credentialSubject": {"id": "did:example:learner-7"},
        },
        "iss": did,
        "nbf": 1262304000,
        "exp": 1262390400,
    }
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "expired", result
    assert check(result, "validity_period")["result"] == "fail"


@pytest.mark.parametrize("typ", [None, "JWT", "vc+jwt"])
def test_accepted_typ_values(world: World, typ: str | None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    did = did_key(key.public_key())
    token = jwt.encode(
        ob_credential(did),
        key,
        algorithm="ES256",
        headers={"typ": typ or "", "kid": did_key_url(key.public_key())},
    )
    assert header_of(token).get("typ") == typ
    assert_genuine_but_unconfirmed(world.verify(token))


@pytest.mark.parametrize("typ", ["bad+typ", "vp+jwt", "at+jwt"])
def test_rejected_typ_values(world: World, typ: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    did = did_key(key.public_key())
    token = signed(ob_credential(did), key, "ES256", typ=typ, kid=did_key_url(key.public_key()))
    result = world.verify(token)
    assert result["verified"] is False
    assert result["status"] == "invalid"
    assert check(result, "format")["result"] == "fail"
    assert typ in check(result, "format")["detail"]


def test_crit_header_is_rejected(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    did = did_key(key.public_key())
    token = signed(
        ob_credential(did),
        key,
        "ES256",
        kid=did_key_url(key.public_key()),
        crit=["urn:example:unknown"],
        **{"urn:example:unknown": True},
    )
    result = world.verify(token)
    assert result["verified"] is False
    assert check(result, "format")["result"] == "fail"


def test_foreign_expired_credential_by_valid_until(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    payload = ob_credential(did, validUntil="2024-06-01T00:00:00Z")
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "expired", result
    assert check(result, "signature")["result"] == "pass"


def test_jwt_exp_disagreeing_with_valid_until_is_invalid(world: World) -> None:
    """OB 3.0 §8.2.4.1: exp must be validUntil; a token that says two things is not valid."""
    key = ed25519.Ed25519PrivateKey.generate()
    payload = ob_credential(did_key(key.public_key()), validUntil="2999-01-01T00:00:00Z")
    payload["exp"] = 1717200000  # 2024-06-01
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "invalid", result
    assert "'exp' claim" in check(result, "format")["detail"]


def test_jwt_nbf_disagreeing_with_valid_from_is_invalid(world: World) -> None:
    """OB 3.0 §8.2.4.1: nbf must be validFrom; a token that says two things is not valid."""
    key = ed25519.Ed25519PrivateKey.generate()
    payload = ob_credential(did_key(key.public_key()))
    payload["nbf"] = 32503680000  # 3000-01-01
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "invalid", result
    assert "'nbf' claim" in check(result, "format")["detail"]


def test_not_yet_valid_credential(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    payload = ob_credential(did_key(key.public_key()), validFrom="3000-01-01T00:00:00Z")
    result = world.verify(signed(payload, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "not_yet_valid", result
    assert check(result, "validity_period")["result"] == "fail"


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("validFrom", "yesterday"),
        ("validUntil", "soon"),
        ("exp", "never"),
        ("exp", 1e20),  # beyond any datetime
        ("nbf", 10**30),
        ("exp", float("nan")),  # Python's json reads NaN
        ("validUntil", -1e300),
    ],
)
def test_unreadable_validity_date_fails(world: World, member: str, value: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    payload = ob_credential(did_key(key.public_key()))
    payload[member] = value
    # PyJWT checks registered claims it encodes (exp must be a number), so sign the bytes by hand.
    header = {"alg": "EdDSA", "typ": "JWT", "kid": did_key_url(key.public_key())}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    token = f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"
    result = world.verify(token)
    assert result["verified"] is False
    # A date that is not a date is never "expired": the credential is invalid, and the check
    # that found it names the member.
    assert result["status"] == "invalid", result
    named = [c for c in result["checks"] if c["result"] == "fail" and member in c["detail"]]
    assert named, result
