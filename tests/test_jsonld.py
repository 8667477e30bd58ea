"""JSON-LD: every term of what we issue is defined, checked as the 1EdTech validator checks (pyld
and jsonld.js over the validator's own contexts); the VCDM 2.0 / 1.1 rules of the `data_model`
check, one failing example per rule; and totality on arbitrary JSON.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from nodejs import run_node
from pyld import jsonld  # type: ignore[import-untyped]

from app.core import jsonld as ld
from app.core.jsonld import ContextLoader, ContextUnavailable, undefined_terms
from app.core.keys import b64url_decode
from app.core.standards import OB3_EXTENSIONS_CONTEXT
from app.credentials.builder import Recipient, build_credential, identity_hash
from app.main import create_app
from app.verify.data_model import Violation, data_model_outcome, vcdm_violations
from app.verify.schemas import CheckResult
from conftest import BASE_URL, STANDARDS, World, make_settings

FIXTURES = STANDARDS / "validator-fixtures" / "ob30"
UNDEFINED = "urn:UNDEFINEDTERM"

# The document the 1EdTech validator serves for each URL (its CachingDocumentLoader map, for the
# files vendored in ../shared/standards; see INDEX.md). Its VC v2 copy has no `@vocab`.
VALIDATOR_CONTEXTS = {
    "https://www.w3.org/ns/credentials/v2": "w3c-contexts/credentials-v2.jsonld",
    "https://www.w3.org/2018/credentials/v1": "w3c-contexts/2018-credentials-v1.jsonld",
    "https://purl.imsglobal.org/spec/ob/v3p0/context.json": "ob3/context/context.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json": "ob3/context/context-3.0.1.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": "ob3/context/context-3.0.2.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob3/context/context-3.0.3.validator-copy.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json": "ob3/context/extensions.validator-copy.json",
    "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json": "w3c-contexts/clr-v2p0-2.0.1.json",
    "https://www.w3.org/ns/did/v1": "w3c-contexts/did-v1.jsonld",
    "https://w3id.org/security/suites/ed25519-2020/v1": "w3c-contexts/suites-ed25519-2020.jsonld",
    "https://w3id.org/security/suites/jws-2020/v1": "w3c-contexts/suites-jws-2020.jsonld",
    "https://w3id.org/security/data-integrity/v1": "w3c-contexts/data-integrity-v1.jsonld",
    "https://w3id.org/security/v2": "w3c-contexts/security-v2.jsonld",
    "https://w3id.org/security/v3": "w3c-contexts/security-v3-unstable.jsonld",
}


def _read(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def validator_documents() -> dict[str, Any]:
    return {url: _read(STANDARDS / name) for url, name in VALIDATOR_CONTEXTS.items()}


def shipped_documents() -> dict[str, Any]:
    loader = ContextLoader()
    return {url: loader.document(url) for url in ld.SHIPPED_CONTEXTS}


def validator_undefined(document: dict[str, Any]) -> list[str]:
    """IRIs in urn:UNDEFINEDTERM after expanding as the validator does (pyld, not our loader):
    every key, and every string in an array (the `@type` values)."""
    documents = validator_documents()

    def load(url: str, options: Any = None) -> dict[str, Any]:
        return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(documents[url])}

    expanded = jsonld.expand(
        document, {"documentLoader": load, "expandContext": {"@vocab": UNDEFINED}}
    )
    found: list[str] = []
    stack: list[Any] = [expanded]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            found += [v for v in value if isinstance(v, str) and v.startswith(UNDEFINED)]
            stack += value
        elif isinstance(value, dict):
            found += [k for k in value if k.startswith(UNDEFINED)]
            stack += value.values()
    return found


def payload_of(token: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return data


# --- what we issue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    label: str
    document: dict[str, Any]
    status_list: bool = False

    @property
    def envelope_free(self) -> dict[str, Any]:
        """Without the JWT registered claims: `jti`, which OB 3.0 puts in every VC-JWT payload,
        is defined by no context but the validator's copy of OB 3.0.3."""
        return {k: v for k, v in self.document.items() if k not in JWT_CLAIMS}

    @property
    def as_the_validator_reads_it(self) -> dict[str, Any]:
        # The validator expands a credential's whole JWT payload; a status list it never expands
        # (its BitstringStatusListCredentialInspector has no JSON-LD probe): ours is held to the
        # same rule, minus the envelope.
        return self.envelope_free if self.status_list else self.document


JWT_CLAIMS = frozenset({"iss", "jti", "sub", "nbf", "exp", "iat", "aud"})


@pytest.fixture(scope="module")
def issued(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Issued]:
    """Credentials of ES256, RS256 and EdDSA issuers, with and without suspension, with evidence;
    each as the JSON the API returns and as its JWT payload; and the issuers' status lists."""
    folder = tmp_path_factory.mktemp("jsonld")
    shutil.copy(sqlite_template, folder / "microcred.db")
    settings = make_settings(f"sqlite:///{folder / 'microcred.db'}", folder / "keys")
    out: list[Issued] = []
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = World(client)
        for algorithm in ("ES256", "RS256", "EdDSA"):
            for suspension in (False, True):
                slug = f"{algorithm.lower()}-{'suspension' if suspension else 'revocation'}"
                issuer = world.issuer(slug=slug, algorithm=algorithm, suspension=suspension)
                key = issuer["api_key"]["key"]
                achievement = world.achievement(key)
                credential = world.credential(
                    key,
                    achievement["uuid"],
                    recipient={"did": "did:example:learner-7", "name": "Amara Okafor"}
                    if suspension
                    else {"email": "amara@example.com", "name": "Amara Okafor"},
                    valid_until="2031-01-01T00:00:00Z",
                    evidence=[
                        {
                            "id": "https://portfolio.example/amara/sql",
                            "name": "Capstone",
                            "narrative": "Query plans for the sales warehouse.",
                            "genre": "Project",
                            "audience": "Hiring managers",
                        },
                        {"description": "Proctored exam, 92%."},
                    ],
                )
                label = f"{algorithm}{' +suspension' if suspension else ''}"
                out.append(Issued(f"{label} credential", credential["credential"]))
                out.append(Issued(f"{label} JWT payload", payload_of(credential["jwt"])))
                entries = credential["credential"]["credentialStatus"]
                for entry in entries if isinstance(entries, list) else [entries]:
                    path = urlsplit(entry["statusListCredential"]).path
                    as_json = client.get(path, headers={"Accept": "application/vc+ld+json"})
                    assert as_json.status_code == 200, as_json.text
                    list_label = f"{label} {entry['statusPurpose']} list"
                    out.append(Issued(list_label, as_json.json(), status_list=True))
                    token = client.get(path, headers={"Accept": "application/vc+jwt"})
                    out.append(
                        Issued(f"{list_label} JWT", payload_of(token.text), status_list=True)
                    )
    return out


def test_everything_we_issue_defines_every_term_as_the_validator_checks(
    issued: list[Issued],
) -> None:
    assert len(issued) == 6 * 2 + 9 * 2  # 6 credentials, 9 status lists
    for item in issued:
        assert validator_undefined(item.as_the_validator_reads_it) == [], item.label


def test_everything_we_issue_defines_every_term_in_jsonld_js_and_passes_safe_mode(
    issued: list[Issued],
) -> None:
    """jsonld.js: the validator's expansion over its contexts; and `safe: true` over the contexts
    we ship (a VC v2 without `@vocab`: an undefined term is dropped, so refused) and over the W3C
    VC v2 (the same plus `@vocab`, the only difference: relative or lossy values still fail)."""
    w3c = shipped_documents()
    w3c["https://www.w3.org/ns/credentials/v2"] = with_issuer_dependent_vocab(
        w3c["https://www.w3.org/ns/credentials/v2"]
    )
    # A control per run, last, shows that the run can fail: the schema type undefined, or an id
    # that is not a URL (which only safe mode notices once `@vocab` defines every term).
    undefined_type = copy.deepcopy(issued[0].document)
    undefined_type["@context"].remove(OB3_EXTENSIONS_CONTEXT)
    relative_id = {**issued[0].document, "id": "credentials/7"}
    runs = {
        "validator": {
            "contexts": validator_documents(),
            "documents": [*(i.as_the_validator_reads_it for i in issued), undefined_type],
        },
        "shipped": {
            "contexts": shipped_documents(),
            "documents": [*(i.envelope_free for i in issued), undefined_type],
        },
        "w3c": {"contexts": w3c, "documents": [*(i.document for i in issued), relative_id]},
    }
    done = run_node("expand-validator.mjs", json.dumps(runs), package="jsonld")
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert sorted(output) == sorted(runs)
    for name, results in output.items():
        *ours_, control = results
        assert control["safe"] is not None, (name, control)
        if name != "w3c":
            assert control["undefined"] == [f"{UNDEFINED}1EdTechJsonSchemaValidator2019"]
        for item, result in zip(issued, ours_, strict=True):
            assert result["error"] is None, (name, item.label, result)
            assert result["undefined"] == [], (name, item.label, result)
            assert result["safe"] is None, (name, item.label, result)


def with_issuer_dependent_vocab(context: dict[str, Any]) -> dict[str, Any]:
    body = {"@protected": True, "@vocab": ld.ISSUER_DEPENDENT}
    body.update(context["@context"])
    return {"@context": body}


def test_our_loader_and_the_data_model_check_pass_what_we_issue(issued: list[Issued]) -> None:
    loader = ContextLoader()
    for item in issued:
        assert undefined_terms(item.envelope_free, loader=loader) == [], item.label
        # The check leaves the envelope's claims out by itself.
        result, detail = data_model_outcome(item.document, version="2.0", loader=loader)
        assert result is CheckResult.pass_, (item.label, detail)
        assert "every property and type is defined" in detail
    payload = next(i for i in issued if i.label.endswith("list JWT")).document
    assert undefined_terms(payload, loader=loader) == [
        "/jti: the property 'jti' is not defined by the contexts"
    ]


def test_without_the_extensions_context_the_schema_validator_type_is_undefined(
    issued: list[Issued],
) -> None:
    credential = copy.deepcopy(issued[0].document)
    credential["@context"].remove(OB3_EXTENSIONS_CONTEXT)
    assert validator_undefined(credential) == [f"{UNDEFINED}1EdTechJsonSchemaValidator2019"]
    assert undefined_terms(credential, loader=ContextLoader()) == [
        "/credentialSchema/type: the type '1EdTechJsonSchemaValidator2019' is not defined by the contexts"
    ]


# --- the JSON-LD machinery ------------------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = _read(FIXTURES / name)
    document.pop("proof", None)
    return document


def ours(**changes: Any) -> dict[str, Any]:
    """A credential as we build it (the pure builder), with two status entries."""
    base = "http://testserver"
    status = [
        {
            "id": f"{base}/status/acme/{purpose}/1#7",
            "type": "BitstringStatusListEntry",
            "statusPurpose": purpose,
            "statusListIndex": "7",
            "statusListCredential": f"{base}/status/acme/{purpose}/1",
        }
        for purpose in ("revocation", "suspension")
    ]
    credential = build_credential(
        credential_id=f"{base}/credentials/3f1e0c52-5b8e-4f0e-9d61-0b7c3d1f2a10",
        issuer_profile={
            "id": "did:web:testserver:issuers:acme",
            "type": ["Profile"],
            "name": "Acme Academy",
            "url": "https://acme.example",
        },
        achievement={
            "id": f"{base}/achievements/6a2b9e7d-1c4f-4a8e-b0d3-5e9f1a2c3b4d",
            "type": ["Achievement"],
            "name": "SQL for Analysts",
            "description": "Writes correct, efficient SQL.",
            "criteria": {"narrative": "Passed a proctored exam."},
        },
        recipient=Recipient(
            subject_id="urn:uuid:7d9c1e2a-3b4f-4c5d-8e6f-a1b2c3d4e5f6",
            email_hash=identity_hash("amara@example.com", "pepper"),
            salt="pepper",
            name="Amara Okafor",
        ),
        valid_from=datetime(2024, 1, 1, tzinfo=UTC),
        valid_until=datetime(2030, 1, 1, tzinfo=UTC),
        awarded=datetime(2024, 1, 1, tzinfo=UTC),
        evidence=[{"id": "https://portfolio.example/amara", "narrative": "A project."}],
        credential_status=status,
    )
    credential.update(changes)
    return credential


@pytest.fixture
def loader() -> ContextLoader:
    return ContextLoader()


@pytest.mark.parametrize("name", ["simple.json", "complete.json"])
def test_validator_fixtures_pass_every_check(name: str, loader: ContextLoader) -> None:
    document = fixture(name)
    assert vcdm_violations(document, version="2.0") == []
    assert undefined_terms(document, loader=loader) == []
    assert validator_undefined(document) == []
    assert data_model_outcome(document, version="2.0", loader=loader)[0] is CheckResult.pass_


def test_a_vcdm_1_1_fixture_passes_the_1_1_rules(loader: ContextLoader) -> None:
    document = fixture("simple_v1.json")
    assert vcdm_violations(document, version="1.1") == []
    assert undefined_terms(document, loader=loader) == []
    assert data_model_outcome(document, version="1.1", loader=loader)[0] is CheckResult.pass_


def test_undefined_properties_types_and_values_are_named_with_their_path(
    loader: ContextLoader,
) -> None:
    credential = ours(type=["VerifiableCredential", "OpenBadgeCredential", "HonoursBadge"])
    credential["credentialSubject"]["favouriteColour"] = "teal"
    credential["credentialSubject"]["achievement"]["type"] = ["Achievement", "Quest"]
    credential["evidence"].append({"type": ["Evidence"], "grade": "A"})
    credential["proof"] = {"type": "DataIntegrityProof", "proofPurpose": "bragging"}
    assert undefined_terms(credential, loader=loader) == [
        "/type: the type 'HonoursBadge' is not defined by the contexts",
        "/credentialSubject/favouriteColour: the property 'favouriteColour' is not defined by the contexts",
        "/credentialSubject/achievement/type: the type 'Quest' is not defined by the contexts",
        "/evidence/1/grade: the property 'grade' is not defined by the contexts",
        "/proof/proofPurpose: the value 'bragging' is not defined by the contexts",
    ]
    result, detail = data_model_outcome(credential, version="2.0", loader=loader)
    assert result is CheckResult.fail
    assert "VCDM 2.0 §5.2 Extensibility at /credentialSubject/favouriteColour:" in detail


def test_terms_of_the_issuer_dependent_vocabulary_count_as_undefined(
    loader: ContextLoader,
) -> None:
    credential = ours()
    credential["@context"] = [*credential["@context"], {"@vocab": ld.ISSUER_DEPENDENT}]
    credential["credentialSubject"]["favouriteColour"] = "teal"
    assert undefined_terms(credential, loader=loader) == [
        "/credentialSubject/favouriteColour: the property 'favouriteColour' is not defined by the contexts"
    ]


def test_a_context_that_defines_its_terms_makes_them_defined(loader: ContextLoader) -> None:
    credential = ours()
    credential["@context"] = [
        *credential["@context"],
        {"favouriteColour": "https://example.org/vocab#favouriteColour"},
    ]
    credential["credentialSubject"]["favouriteColour"] = "teal"
    assert undefined_terms(credential, loader=loader) == []


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"name": "https://evil.example/name"}, "protected term redefinition"),
        (42, "invalid local context"),
        ({"@version": 2}, "invalid @version value"),
    ],
)
def test_invalid_json_ld_fails_naming_the_json_ld_error(
    context: Any, expected: str, loader: ContextLoader
) -> None:
    credential = ours()
    credential["@context"] = [*credential["@context"], context]
    problems = undefined_terms(credential, loader=loader)
    assert len(problems) == 1
    assert problems[0].startswith("/: not valid JSON-LD: ")
    assert expected in problems[0]
    result, detail = data_model_outcome(credential, version="2.0", loader=loader)
    assert result is CheckResult.fail
    assert "VCDM 2.0 §4.3 Contexts at /: not valid JSON-LD" in detail


def test_a_dropped_property_is_reported(loader: ContextLoader) -> None:
    credential = ours()
    credential["@context"] = [*credential["@context"], {"nothing": None}]
    credential["credentialSubject"]["nothing"] = 1
    assert undefined_terms(credential, loader=loader) == [
        "/: a key that is neither a term nor an IRI (keyword-like, or a term mapped to null) does not expand to an absolute IRI: it is dropped"
    ]


REMOTE = "https://contexts.example.org/badges/v1"
REMOTE_CONTEXT = {"@context": {"level": "https://contexts.example.org/badges#level"}}


def remote_credential() -> dict[str, Any]:
    credential = ours()
    credential["@context"] = [*credential["@context"], REMOTE]
    credential["credentialSubject"]["level"] = "gold"
    return credential


def test_a_context_not_shipped_is_fetched_once_through_the_fetch_given() -> None:
    calls: list[str] = []

    def fetch(url: str) -> Any:
        calls.append(url)
        return copy.deepcopy(REMOTE_CONTEXT)

    loader = ContextLoader(fetch=fetch)
    for _ in range(3):
        assert undefined_terms(remote_credential(), loader=loader) == []
    assert calls == [REMOTE]


@pytest.mark.parametrize(
    ("fetch", "context", "expected"),
    [
        (None, REMOTE, "fetching contexts is turned off"),
        (lambda url: REMOTE_CONTEXT, "http://contexts.example.org/v1", "only https contexts"),
        (lambda url: 1 / 0, REMOTE, "could not be fetched: division by zero"),
    ],
)
def test_a_context_that_cannot_be_had_makes_the_check_an_error(
    fetch: Callable[[str], Any] | None, context: str, expected: str
) -> None:
    loader = ContextLoader(fetch=fetch)
    credential = ours()
    credential["@context"] = [*credential["@context"], context]
    with pytest.raises(ContextUnavailable, match=expected):
        undefined_terms(credential, loader=loader)
    result, detail = data_model_outcome(credential, version="2.0", loader=loader)
    assert result is CheckResult.error
    assert detail.startswith("Could not check that every term is defined")
    assert expected in detail


def test_an_error_is_not_remembered_but_a_verdict_is() -> None:
    answers: list[Any] = [OSError("timed out"), REMOTE_CONTEXT]

    def fetch(url: str) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    loader = ContextLoader(fetch=fetch)
    credential = remote_credential()
    assert data_model_outcome(credential, version="2.0", loader=loader)[0] is CheckResult.error
    first = data_model_outcome(credential, version="2.0", loader=loader)
    assert first[0] is CheckResult.pass_
    assert data_model_outcome(credential, version="2.0", loader=loader) is first
    assert answers == []


def test_a_violation_wins_over_a_context_that_cannot_be_had() -> None:
    credential = remote_credential()
    del credential["issuer"]
    result, detail = data_model_outcome(credential, version="2.0", loader=ContextLoader())
    assert result is CheckResult.fail
    assert "VCDM 2.0 §4.7 Issuer at /issuer: required" in detail


def test_remote_contexts_per_document_are_limited() -> None:
    loader = ContextLoader(fetch=lambda url: {"@context": {}}, max_remote=2)
    credential = ours()
    credential["@context"] = [*credential["@context"], *(f"{REMOTE}/{i}" for i in range(3))]
    with pytest.raises(ContextUnavailable, match="more than 2 contexts"):
        undefined_terms(credential, loader=loader)


def test_the_remote_contexts_setting_decides_whether_the_fetch_is_used(tmp_path: Path) -> None:
    def fetch(url: str) -> Any:
        return REMOTE_CONTEXT

    on = make_settings("sqlite://", tmp_path)
    off = make_settings("sqlite://", tmp_path, remote_contexts=False)
    assert ContextLoader.from_settings(on, fetch=fetch).fetch is fetch
    assert ContextLoader.from_settings(off, fetch=fetch).fetch is None


def test_skipping_the_expansion_says_why(loader: ContextLoader) -> None:
    credential = ours()
    credential["credentialSubject"]["favouriteColour"] = "teal"
    result, detail = data_model_outcome(
        credential, version="2.0", loader=loader, check_jsonld=False
    )
    assert result is CheckResult.pass_
    assert "JSON-LD expansion was skipped" in detail
    assert "byte-identical to one this service checked when it issued it" in detail


def test_a_content_key_is_what_outcomes_are_remembered_by(loader: ContextLoader) -> None:
    good, bad = ours(), ours(issuer=42)
    first = data_model_outcome(good, version="2.0", loader=loader, content_key="segment-1")
    assert first[0] is CheckResult.pass_
    # Same key, same outcome: the key stands for the content (a signed payload segment).
    assert data_model_outcome(bad, version="2.0", loader=loader, content_key="segment-1") is first
    assert data_model_outcome(bad, version="2.0", loader=loader)[0] is CheckResult.fail


def test_loaders_share_nothing_and_threads_agree(loader: ContextLoader) -> None:
    documents = [ours(), fixture("simple.json"), fixture("simple_v1.json")]
    broken = ours()
    broken["credentialSubject"]["favouriteColour"] = "teal"
    documents.append(broken)
    expected = [undefined_terms(d, loader=ContextLoader()) for d in documents]
    barrier = threading.Barrier(8)

    def work(worker: int) -> list[list[str]]:
        barrier.wait()
        return [
            undefined_terms(documents[(worker + i) % len(documents)], loader=loader)
            for i in range(6)
        ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        for worker, results in enumerate(pool.map(work, range(8))):
            for i, result in enumerate(results):
                assert result == expected[(worker + i) % len(documents)]


# --- the VCDM rules -------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the credential: put `value` at the JSON pointer `path` (`...` deletes)."""

    def change(credential: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        target: Any = credential
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if value is ...:
            del target[key]
        else:
            target[key] = value

    return change


V2 = "VCDM 2.0 "
V2_CASES: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (_set("/@context", ...), "§4.3 Contexts", "/@context"),
    (_set("/@context", "https://www.w3.org/ns/credentials/v2"), "§4.3 Contexts", "/@context"),
    (_set("/@context", []), "§4.3 Contexts", "/@context"),
    (_set("/@context/0", "https://www.w3.org/2018/credentials/v1"), "§4.3 Contexts", "/@context/0"),
    (_set("/@context/1", "context-3.0.3.json"), "§4.3 Contexts", "/@context/1"),
    (_set("/@context/2", 7), "§4.3 Contexts", "/@context/2"),
    (_set("/id", None), "§4.4 Identifiers", "/id"),
    (_set("/id", ["urn:uuid:1", "urn:uuid:2"]), "§4.4 Identifiers", "/id"),
    (_set("/id", "credential 7"), "§4.4 Identifiers", "/id"),
    (_set("/type", ...), "§4.5 Types", "/type"),
    (_set("/type", []), "§4.5 Types", "/type"),
    (_set("/type", ["OpenBadgeCredential"]), "§4.5 Types", "/type"),
    (_set("/type/1", 7), "§4.5 Types", "/type/1"),
    (_set("/type/1", "Open Badge"), "§4.5 Types", "/type/1"),
    (_set("/name", 7), "§4.6 Names and Descriptions", "/name"),
    (
        _set("/description", [{"@value": "x"}, None]),
        "§4.6 Names and Descriptions",
        "/description/1",
    ),
    (
        _set("/name", {"@value": "SQL", "@language": "en", "note": 1}),
        "§11.1 Language and Base Direction",
        "/name",
    ),
    (_set("/name", {"@language": "en"}), "§11.1 Language and Base Direction", "/name/@value"),
    (
        _set("/name", [{"@value": "SQL", "@language": 7}]),
        "§11.1 Language and Base Direction",
        "/name/0/@language",
    ),
    (
        _set("/description", {"@value": "d", "@direction": "up"}),
        "§11.1 Language and Base Direction",
        "/description/@direction",
    ),
    (
        _set("/issuer/name", {"@value": "Acme", "url": "x"}),
        "§11.1 Language and Base Direction",
        "/issuer/name",
    ),
    (_set("/issuer", ...), "§4.7 Issuer", "/issuer"),
    (_set("/issuer", "Acme Academy"), "§4.7 Issuer", "/issuer"),
    (_set("/issuer", 7), "§4.7 Issuer", "/issuer"),
    (_set("/issuer/id", ...), "§4.7 Issuer", "/issuer/id"),
    (_set("/issuer/id", "acme"), "§4.7 Issuer", "/issuer/id"),
    (_set("/credentialSubject", ...), "§4.8 Credential Subject", "/credentialSubject"),
    (_set("/credentialSubject", {}), "§4.8 Credential Subject", "/credentialSubject"),
    (_set("/credentialSubject", []), "§4.8 Credential Subject", "/credentialSubject"),
    (_set("/credentialSubject", "did:example:1"), "§4.8 Credential Subject", "/credentialSubject"),
    (
        _set("/credentialSubject", [{"id": "did:example:1", "name": "A"}, {}]),
        "§4.8 Credential Subject",
        "/credentialSubject/1",
    ),
    (_set("/credentialSubject/id", "amara"), "§4.8 Credential Subject", "/credentialSubject/id"),
    (_set("/validFrom", "2024-01-01"), "§4.9 Validity Period", "/validFrom"),
    (_set("/validFrom", "2024-01-01T00:00:00"), "§4.9 Validity Period", "/validFrom"),
    (_set("/validFrom", 1704067200), "§4.9 Validity Period", "/validFrom"),
    (_set("/validFrom", "2024-02-30T00:00:00Z"), "§4.9 Validity Period", "/validFrom"),
    (_set("/validFrom", "2024-01-01t00:00:00z"), "§4.9 Validity Period", "/validFrom"),
    (_set("/validFrom", "2024-01-01T00:00:00+15:00"), "§4.9 Validity Period", "/validFrom"),
    (_set("/validUntil", "2023-12-31T23:59:59Z"), "§4.9 Validity Period", "/validUntil"),
    (_set("/validUntil", None), "§4.9 Validity Period", "/validUntil"),
    (_set("/credentialStatus/0/type", ...), "§4.10 Status", "/credentialStatus/0/type"),
    (_set("/credentialStatus/1/id", "slot 7"), "§4.10 Status", "/credentialStatus/1/id"),
    (_set("/credentialStatus", []), "§4.10 Status", "/credentialStatus"),
    (_set("/credentialSchema/0/type", ...), "§4.11 Data Schemas", "/credentialSchema/0/type"),
    (_set("/credentialSchema/0/id", ...), "§4.11 Data Schemas", "/credentialSchema/0/id"),
    (
        _set("/credentialSchema", "https://schema.example/1"),
        "§4.11 Data Schemas",
        "/credentialSchema",
    ),
    (
        _set("/refreshService", {"id": "https://r.example/1"}),
        "§5.4 Refreshing",
        "/refreshService/type",
    ),
    (
        _set("/termsOfUse", [{"id": "https://tou.example/1", "type": ""}]),
        "§5.5 Terms of Use",
        "/termsOfUse/0/type",
    ),
    (_set("/evidence/0", "a project"), "§5.6 Evidence", "/evidence/0"),
    (_set("/evidence/0/type", ...), "§5.6 Evidence", "/evidence/0/type"),
    (_set("/evidence/0/id", "portfolio"), "§5.6 Evidence", "/evidence/0/id"),
    (_set("/renderMethod", []), "§5.10 Reserved Extension Points", "/renderMethod"),
    (
        _set("/renderMethod", {"id": "https://render.example/1"}),
        "§5.10 Reserved Extension Points",
        "/renderMethod/type",
    ),
]


@pytest.mark.parametrize(("change", "rule", "path"), V2_CASES)
def test_each_vcdm_2_rule_fails_naming_its_section_and_path(
    change: Callable[[dict[str, Any]], None], rule: str, path: str, loader: ContextLoader
) -> None:
    credential = ours()
    change(credential)
    violations = vcdm_violations(credential, version="2.0")
    assert any(v.rule == V2 + rule and v.path == path for v in violations), violations
    result, detail = data_model_outcome(credential, version="2.0", loader=loader)
    assert result is CheckResult.fail
    assert f"{V2}{rule} at {path}: " in detail


@pytest.mark.parametrize(
    "change",
    [
        _set("/credentialStatus/0/id", ...),  # §4.10: a status entry's id is OPTIONAL in 2.0
        _set(
            "/credentialStatus", {"type": "BitstringStatusListEntry", "statusPurpose": "revocation"}
        ),
        _set("/credentialSubject", [{"id": "did:example:1", "name": "A"}, {"name": "B"}]),
        _set(
            "/name",
            [
                {"@value": "SQL", "@language": "en"},
                {"@value": "SQL", "@language": "fr", "@direction": "ltr"},
            ],
        ),
        _set("/description", {"@value": "d"}),
        _set("/issuer", "did:web:testserver:issuers:acme"),
        _set("/validFrom", "2024-01-01T05:30:00.123456789+05:30"),
        _set("/validUntil", "2030-01-01T00:00:00-14:00"),
        _set("/validUntil", "12024-01-01T00:00:00Z"),
        _set("/type", "VerifiableCredential"),
        _set("/id", "urn:uuid:3f1e0c52-5b8e-4f0e-9d61-0b7c3d1f2a10"),
    ],
)
def test_what_vcdm_2_allows_passes(change: Callable[[dict[str, Any]], None]) -> None:
    credential = ours()
    change(credential)
    assert vcdm_violations(credential, version="2.0") == []


def v1_credential() -> dict[str, Any]:
    credential = fixture("simple_v1.json")
    credential["expirationDate"] = "2030-01-01T00:00:00Z"
    credential["credentialStatus"] = {
        "id": "https://example.com/status/1#3",
        "type": "StatusList2021Entry",
    }
    credential["credentialSchema"] = [
        {"id": "https://example.com/schema.json", "type": "JsonSchema"}
    ]
    return credential


V1 = "VCDM 1.1 "
V1_CASES: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (_set("/@context/0", "https://www.w3.org/ns/credentials/v2"), "§4.1 Contexts", "/@context/0"),
    (_set("/id", {"id": "x"}), "§4.2 Identifiers", "/id"),
    (_set("/type", ["OpenBadgeCredential"]), "§4.3 Types", "/type"),
    (_set("/credentialSubject", {}), "§4.4 Credential Subject", "/credentialSubject"),
    (_set("/issuer", ...), "§4.5 Issuer", "/issuer"),
    (_set("/issuer/id", "example corp"), "§4.5 Issuer", "/issuer/id"),
    (_set("/issuanceDate", ...), "§4.6 Issuance Date", "/issuanceDate"),
    (_set("/issuanceDate", "2010-01-01"), "§4.6 Issuance Date", "/issuanceDate"),
    (_set("/issuanceDate", "2010-01-01T00:00:00"), "§4.6 Issuance Date", "/issuanceDate"),
    (_set("/issuanceDate", "12010-01-01T00:00:00Z"), "§4.6 Issuance Date", "/issuanceDate"),
    (_set("/expirationDate", 1893456000), "§4.8 Expiration", "/expirationDate"),
    (_set("/credentialStatus/id", ...), "§4.9 Status", "/credentialStatus/id"),
    (_set("/credentialStatus/type", ...), "§4.9 Status", "/credentialStatus/type"),
    (_set("/credentialSchema/0/id", ...), "§5.4 Data Schemas", "/credentialSchema/0/id"),
    (
        _set("/refreshService", {"type": "ManualRefreshService2018"}),
        "§5.5 Refreshing",
        "/refreshService/id",
    ),
    (_set("/termsOfUse", {"id": "https://tou.example/1"}), "§5.6 Terms of Use", "/termsOfUse/type"),
    (_set("/evidence", [7]), "§5.7 Evidence", "/evidence/0"),
]


@pytest.mark.parametrize(("change", "rule", "path"), V1_CASES)
def test_each_vcdm_1_1_rule_fails_naming_its_section_and_path(
    change: Callable[[dict[str, Any]], None], rule: str, path: str
) -> None:
    credential = v1_credential()
    assert vcdm_violations(credential, version="1.1") == []
    change(credential)
    violations = vcdm_violations(credential, version="1.1")
    assert any(v.rule == V1 + rule and v.path == path for v in violations), violations


def test_vcdm_1_1_dates_follow_rfc_3339() -> None:
    credential = v1_credential()
    credential["issuanceDate"] = "2010-01-01t00:00:00z"  # RFC 3339 §5.6 allows lower case
    assert vcdm_violations(credential, version="1.1") == []


def test_violations_read_as_rule_path_and_message() -> None:
    assert str(Violation("VCDM 2.0 §4.4 Identifiers", "/id", "must be a URL")) == (
        "VCDM 2.0 §4.4 Identifiers at /id: must be a URL"
    )


def test_many_violations_are_counted_not_all_listed(loader: ContextLoader) -> None:
    credential = ours()
    credential["@context"] = [credential["@context"][0], *range(20)]
    result, detail = data_model_outcome(credential, version="2.0", loader=loader)
    assert result is CheckResult.fail
    assert detail.count("VCDM 2.0 §4.3 Contexts at /@context/") == 8
    assert "and 13 more" in detail  # 20 items, plus the JSON-LD error they cause


# --- totality -------------------------------------------------------------------------------


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "credential",
    [
        None,
        7,
        "a credential",
        [ours()],
        ours(credentialSubject=_deep(5000)),
        ours(evidence=[{"type": "Evidence", "narrative": _deep(5000)}]),
        ours(name="\ud800", issuer={"id": "did:web:\udfff", "name": {"@value": "\ud800"}}),
        ours(
            **{"\ud800": "lone", "validFrom": "\ud800", "type": ["VerifiableCredential", "\udfff"]}
        ),
        ours(validFrom=float("nan"), validUntil=float("inf"), id=True),
        {"@context": [{"@context": _deep(100)}], "type": "VerifiableCredential"},
    ],
)
def test_any_value_gives_violations_never_an_exception(
    credential: Any, loader: ContextLoader
) -> None:
    for version in ("2.0", "1.1"):
        assert isinstance(vcdm_violations(credential, version=version), list)
        result, detail = data_model_outcome(credential, version=version, loader=loader)
        assert result is CheckResult.fail
        detail.encode("utf-8")  # a lone surrogate from the input never reaches the detail raw
    assert isinstance(undefined_terms(credential, loader=loader), list)


_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    [
        "",
        "VerifiableCredential",
        "https://www.w3.org/ns/credentials/v2",
        "@context",
        "@id",
        "@type",
        "@vocab",
        "@value",
        "@language",
        "@list",
        "@graph",
        "@json",
        "id",
        "type",
        "2024-01-01T00:00:00Z",
        "did:example:1",
        OB3_EXTENSIONS_CONTEXT,
        "\ud800",
        "a\udfffb",
    ]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_KEYS = sorted(ours())


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_json, key=st.sampled_from(_KEYS), whole=st.booleans())
def test_arbitrary_json_never_raises(
    value: Any, key: str, whole: bool, loader: ContextLoader
) -> None:
    document = value if whole else ours(**{key: value})
    for version in ("2.0", "1.1"):
        assert all(isinstance(v, Violation) for v in vcdm_violations(document, version=version))
        result, detail = data_model_outcome(document, version=version, loader=loader)
        assert result in CheckResult
        detail.encode("utf-8")
    try:
        problems = undefined_terms(document, loader=loader)
    except ContextUnavailable:
        return  # a context this loader has no way to get: "unknown", not a crash
    assert all(isinstance(p, str) for p in problems)
