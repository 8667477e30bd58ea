"""The `data_model` check: is the credential a well-formed W3C Verifiable Credential?

`vcdm_violations` holds a credential to the normative statements of VCDM 2.0 (or VCDM 1.1, for
legacy `vc`-claim tokens) that its JSON shows; each violation names the section and the path.
`data_model_outcome` adds the JSON-LD check of `app.core.jsonld` (every property and type is
defined by the credential's contexts, checked the way the 1EdTech validator checks) and gives
the check's verdict, remembered by content.

Total on purpose: any JSON value anywhere (null, numbers, arrays nested thousands deep, lone
surrogates) gives violations, never an exception. Messages never repeat a value at length.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]  # no type information

from app.core import data_integrity as di
from app.core.jsonld import (
    MAX_DEPTH,
    ContextLoader,
    ContextUnavailable,
    nesting_exceeds,
    term_problems,
)
from app.core.standards import VC1_CONTEXT, VC2_CONTEXT
from app.verify.envelope import strip_jwt_claims
from app.verify.schemas import CheckResult

Version = Literal["2.0", "1.1"]

# Section of each rule, per version (VCDM 2.0 Recommendation of 2025-05-15; VCDM 1.1 of
# 2022-03-03). Undefined terms fall under extensibility ("terms ... defined in a context");
# a context that is not valid JSON-LD under "Contexts" ("each is processable as a JSON-LD
# context").
_SECTIONS: dict[str, dict[str, str]] = {
    "2.0": {
        "credential": "§4.2 Verifiable Credentials",
        "contexts": "§4.3 Contexts",
        "identifiers": "§4.4 Identifiers",
        "types": "§4.5 Types",
        "names": "§4.6 Names and Descriptions",
        "issuer": "§4.7 Issuer",
        "credentialSubject": "§4.8 Credential Subject",
        "validity": "§4.9 Validity Period",
        "credentialStatus": "§4.10 Status",
        "credentialSchema": "§4.11 Data Schemas",
        "terms": "§5.2 Extensibility",
        "refreshService": "§5.4 Refreshing",
        "termsOfUse": "§5.5 Terms of Use",
        "evidence": "§5.6 Evidence",
        "renderMethod": "§5.10 Reserved Extension Points",
        "language": "§11.1 Language and Base Direction",
    },
    "1.1": {
        "credential": "§4 Basic Concepts",
        "contexts": "§4.1 Contexts",
        "identifiers": "§4.2 Identifiers",
        "types": "§4.3 Types",
        "credentialSubject": "§4.4 Credential Subject",
        "issuer": "§4.5 Issuer",
        "issuanceDate": "§4.6 Issuance Date",
        "expirationDate": "§4.8 Expiration",
        "credentialStatus": "§4.9 Status",
        "terms": "§5.3 Extensibility",
        "credentialSchema": "§5.4 Data Schemas",
        "refreshService": "§5.5 Refreshing",
        "termsOfUse": "§5.6 Terms of Use",
        "evidence": "§5.7 Evidence",
    },
}
_BASE_CONTEXT = {"2.0": VC2_CONTEXT, "1.1": VC1_CONTEXT}
# Properties whose value is one object or a set of objects, each with a `type`; True where the
# version also requires each object's `id` (a URL). VCDM 2.0 makes `id` optional everywhere but
# in data schemas (§4.10: a status entry's `id` is OPTIONAL); VCDM 1.1 requires it for status
# (§4.9), data schemas (§5.4) and refresh services (§5.5).
_TYPED_ENTRIES: dict[str, dict[str, bool]] = {
    "2.0": {
        "credentialStatus": False,
        "credentialSchema": True,
        "refreshService": False,
        "termsOfUse": False,
        "evidence": False,
        "renderMethod": False,
    },
    "1.1": {
        "credentialStatus": True,
        "credentialSchema": True,
        "refreshService": True,
        "termsOfUse": False,
        "evidence": False,
    },
}
_LANGUAGE_KEYS = frozenset({"@value", "@language", "@direction"})
_MISSING: Any = object()
MAX_SHOWN = 8  # violations named in a detail; the rest are counted


@dataclass(frozen=True)
class Violation:
    """One broken rule: which (`VCDM 2.0 §4.3 Contexts`), where (`/@context/0`), and how."""

    rule: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} at {self.path}: {self.message}"


def vcdm_violations(credential: Any, *, version: Version) -> list[Violation]:
    """Every VCDM `version` rule the credential's JSON breaks (empty: none), in document order."""
    sections = _SECTIONS[version]

    def rule(name: str) -> str:
        return f"VCDM {version} {sections[name]}"

    if not isinstance(credential, dict):
        return [
            Violation(
                rule("credential"), "/", f"a credential is a JSON object, not {_kind(credential)}"
            )
        ]
    found = _contexts(credential.get("@context", _MISSING), version, rule("contexts"))
    if "id" in credential:
        found += _url(credential["id"], "/id", rule("identifiers"))
    found += _types(
        credential.get("type", _MISSING), "/type", rule("types"), required="VerifiableCredential"
    )
    if version == "2.0":
        found += _texts(credential, "", rule("names"), rule("language"))
    found += _issuer(credential.get("issuer", _MISSING), version, rule)
    found += _subjects(credential.get("credentialSubject", _MISSING), rule("credentialSubject"))
    if version == "2.0":
        found += _validity(credential, rule("validity"))
    else:
        found += _date(
            credential.get("issuanceDate", _MISSING),
            "/issuanceDate",
            rule("issuanceDate"),
            required=True,
            rfc3339=True,
        )
        found += _date(
            credential.get("expirationDate", _MISSING),
            "/expirationDate",
            rule("expirationDate"),
            required=False,
            rfc3339=True,
        )
    for key, id_required in _TYPED_ENTRIES[version].items():
        if key in credential:
            found += _typed_entries(credential[key], f"/{key}", rule(key), id_required=id_required)
    return found


_OUTCOMES: OrderedDict[bytes, tuple[CheckResult, str]] = OrderedDict()
_OUTCOMES_LOCK = threading.Lock()
_OUTCOMES_MAX = 4096


def data_model_outcome(
    credential: Any,
    *,
    version: Version,
    loader: ContextLoader,
    check_jsonld: bool = True,
    content_key: str | None = None,
) -> tuple[CheckResult, str]:
    """The `data_model` check: (pass | fail | error, a detail naming the rule and path of each
    violation).

    `fail`: a VCDM rule is broken, a term is not defined by the credential's contexts, or the
    credential is not valid JSON-LD. `error`: a context could not be had (not shipped, and not
    fetched: turned off, refused, or failed), so nothing is known about the terms. The JWT
    registered claims of a VC-JWT payload (`iss`, `jti`, ...) belong to the envelope and are left
    out of the JSON-LD check (VC v2 defines most, but not `jti`, which OB 3.0 requires).
    `check_jsonld=False` skips the expansion, for a credential byte-identical to one this service
    checked when it issued it. Results other than `error` are remembered by content: by
    `content_key` when given (the signed payload segment, which the credential is a function of),
    else by the credential's JSON."""
    key = _outcome_key(credential, version, loader, check_jsonld, content_key)
    if key is not None:
        with _OUTCOMES_LOCK:
            found = _OUTCOMES.get(key)
            if found is not None:
                _OUTCOMES.move_to_end(key)
                return found
    outcome = _outcome(credential, version=version, loader=loader, check_jsonld=check_jsonld)
    if key is not None and outcome[0] is not CheckResult.error:
        with _OUTCOMES_LOCK:
            _OUTCOMES[key] = outcome
            while len(_OUTCOMES) > _OUTCOMES_MAX:
                _OUTCOMES.popitem(last=False)
    return outcome


def _outcome(
    credential: Any, *, version: Version, loader: ContextLoader, check_jsonld: bool
) -> tuple[CheckResult, str]:
    sections = _SECTIONS[version]
    violations = vcdm_violations(credential, version=version)
    unavailable = None
    if check_jsonld and isinstance(credential, dict):
        try:
            problems = term_problems(
                _without_foreign_proofs(strip_jwt_claims(credential)), loader=loader
            )
        except ContextUnavailable as exc:
            unavailable = str(exc)
        else:
            violations += [
                Violation(
                    f"VCDM {version} {sections['contexts' if p.invalid else 'terms']}",
                    p.path,
                    p.message,
                )
                for p in problems
            ]
    name = f"VCDM {version}"
    if violations:
        shown = "; ".join(str(v) for v in violations[:MAX_SHOWN])
        more = len(violations) - MAX_SHOWN
        rest = f"; and {more} more" if more > 0 else ""
        return CheckResult.fail, f"Does not conform to {name}: {shown}{rest}."
    if unavailable is not None:
        return (
            CheckResult.error,
            f"Could not check that every term is defined by the credential's contexts: {unavailable}. The {name} rules its JSON shows are met.",
        )
    if not check_jsonld:
        return (
            CheckResult.pass_,
            f"Conforms to the {name} data model. The JSON-LD expansion was skipped: the credential is byte-identical to one this service checked when it issued it.",
        )
    return (
        CheckResult.pass_,
        f"Conforms to the {name} data model; every property and type is defined by the credential's contexts.",
    )


def _without_foreign_proofs(credential: dict[str, Any]) -> dict[str, Any]:
    """The credential without the proofs of types this verifier does not check.

    Their vocabulary is their own suite's (which may not be among the contexts): the `signature`
    check reports them as not checked, and an unknown proof must not make the credential look
    malformed. The proofs of the suites we check stay, and must be defined."""
    proofs = credential.get("proof")
    if proofs is None:
        return credential
    kept = [p for p in (proofs if isinstance(proofs, list) else [proofs]) if _checked_suite(p)]
    rest = {k: v for k, v in credential.items() if k != "proof"}
    if not kept:
        return rest
    return {**rest, "proof": kept if isinstance(proofs, list) else kept[0]}


def _checked_suite(proof: Any) -> bool:
    return di.suite_of(proof) in di.SUPPORTED


def _outcome_key(
    credential: Any,
    version: str,
    loader: ContextLoader,
    check_jsonld: bool,
    content_key: str | None,
) -> bytes | None:
    if content_key is not None:
        material = content_key.encode("utf-8", "backslashreplace")
    else:
        if nesting_exceeds(credential, MAX_DEPTH):
            return None  # not worth remembering, and json.dumps would recurse as deep
        try:
            material = json.dumps(credential, sort_keys=True, default=repr).encode()
        except (TypeError, ValueError):  # not JSON after all (keys that are not strings)
            return None
    head = f"{version}|{int(check_jsonld)}|{loader.serial}|".encode()
    return hashlib.sha256(head + material).digest()


# --- the rules ------------------------------------------------------------------------------


def _contexts(value: Any, version: str, rule: str) -> list[Violation]:
    base = _BASE_CONTEXT[version]
    if value is _MISSING:
        return [Violation(rule, "/@context", f"required: an array whose first item is {base}")]
    if not isinstance(value, list) or not value:
        return [
            Violation(
                rule,
                "/@context",
                f"must be an array whose first item is {base}, not {_kind(value)}",
            )
        ]
    found = []
    if value[0] != base:
        found.append(Violation(rule, "/@context/0", f"must be {base}, not {_kind(value[0])}"))
    for index, item in enumerate(value[1:], start=1):
        if isinstance(item, str):
            if not _is_url(item):
                found.append(
                    Violation(
                        rule,
                        f"/@context/{index}",
                        f"a context is a URL or an object, not {_kind(item)}",
                    )
                )
        elif not isinstance(item, dict):
            found.append(
                Violation(
                    rule,
                    f"/@context/{index}",
                    f"a context is a URL or an object, not {_kind(item)}",
                )
            )
    return found


def _types(value: Any, path: str, rule: str, *, required: str | None = None) -> list[Violation]:
    """`type`: one or more terms or absolute URLs (whether a term is defined is the JSON-LD
    check's question; here it must at least be a non-empty string without white space)."""
    if value is _MISSING:
        return [Violation(rule, path, "required: one or more type terms or URLs")]
    if isinstance(value, list) and not value:
        return [Violation(rule, path, "must name at least one type")]
    values = value if isinstance(value, list) else [value]
    found = []
    for index, item in enumerate(values):
        where = f"{path}/{index}" if isinstance(value, list) else path
        if not isinstance(item, str):
            found.append(
                Violation(rule, where, f"a type is a term or a URL (a string), not {_kind(item)}")
            )
        elif not item or any(c.isspace() for c in item):
            found.append(Violation(rule, where, f"a type is a term or a URL, not {_kind(item)}"))
    if required is not None and required not in values:
        found.append(Violation(rule, path, f"must include {required}"))
    return found


def _url(value: Any, path: str, rule: str) -> list[Violation]:
    if isinstance(value, list):
        return [Violation(rule, path, "must be a single URL, not an array")]
    if not _is_url(value):
        return [
            Violation(
                rule,
                path,
                f"must be a URL (absolute, with a scheme such as https: or did:), not {_kind(value)}",
            )
        ]
    return []


def _issuer(value: Any, version: str, rule: Any) -> list[Violation]:
    where = rule("issuer")
    if value is _MISSING:
        return [Violation(where, "/issuer", "required: a URL, or an object with a URL id")]
    if isinstance(value, str):
        return _url(value, "/issuer", where)
    if not isinstance(value, dict):
        return [
            Violation(
                where, "/issuer", f"must be a URL or an object with a URL id, not {_kind(value)}"
            )
        ]
    if "id" not in value:
        found = [Violation(where, "/issuer/id", "required: the issuer's URL")]
    else:
        found = _url(value["id"], "/issuer/id", where)
    if version == "2.0":
        found += _texts(value, "/issuer", rule("names"), rule("language"))
    return found


def _subjects(value: Any, rule: str) -> list[Violation]:
    path = "/credentialSubject"
    if value is _MISSING:
        return [
            Violation(rule, path, "required: one or more objects making claims about a subject")
        ]
    if isinstance(value, list) and not value:
        return [Violation(rule, path, "must hold at least one subject")]
    subjects = value if isinstance(value, list) else [value]
    found = []
    for index, subject in enumerate(subjects):
        where = f"{path}/{index}" if isinstance(value, list) else path
        if not isinstance(subject, dict):
            found.append(
                Violation(rule, where, f"a credential subject is an object, not {_kind(subject)}")
            )
        elif not subject:
            found.append(
                Violation(
                    rule, where, "a credential subject must make at least one claim; {} makes none"
                )
            )
        elif "id" in subject:
            found += _url(subject["id"], f"{where}/id", rule)
    return found


def _typed_entries(value: Any, path: str, rule: str, *, id_required: bool) -> list[Violation]:
    if isinstance(value, list) and not value:
        return [Violation(rule, path, "must hold at least one object")]
    entries = value if isinstance(value, list) else [value]
    found = []
    for index, entry in enumerate(entries):
        where = f"{path}/{index}" if isinstance(value, list) else path
        if not isinstance(entry, dict):
            found.append(
                Violation(rule, where, f"each entry is an object with a type, not {_kind(entry)}")
            )
            continue
        found += _types(entry.get("type", _MISSING), f"{where}/type", rule)
        if "id" in entry:
            found += _url(entry["id"], f"{where}/id", rule)
        elif id_required:
            found.append(Violation(rule, f"{where}/id", "required: a URL"))
    return found


def _texts(obj: dict[str, Any], path: str, rule: str, language_rule: str) -> list[Violation]:
    """`name` and `description`: a string or a language value object (or an array of them, one
    per language)."""
    found = []
    for key in ("name", "description"):
        if key not in obj:
            continue
        value = obj[key]
        where = f"{path}/{key}"
        if isinstance(value, str):
            continue
        if isinstance(value, dict):
            found += _language_value(value, where, language_rule)
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    found += _language_value(item, f"{where}/{index}", language_rule)
                elif not isinstance(item, str):
                    found.append(
                        Violation(
                            rule,
                            f"{where}/{index}",
                            f"must be a string or a language value object, not {_kind(item)}",
                        )
                    )
        else:
            found.append(
                Violation(
                    rule, where, f"must be a string or a language value object, not {_kind(value)}"
                )
            )
    return found


def _language_value(value: dict[str, Any], path: str, rule: str) -> list[Violation]:
    found = []
    others = sorted(str(k) for k in value if k not in _LANGUAGE_KEYS)
    if others:
        named = ", ".join(_quote(k) for k in others[:5])
        found.append(
            Violation(
                rule,
                path,
                f"a language value object holds only @value, @language and @direction, not {named}",
            )
        )
    if not isinstance(value.get("@value"), str):
        found.append(
            Violation(
                rule,
                f"{path}/@value",
                f"required: a string, not {_kind(value.get('@value', _MISSING))}",
            )
        )
    if "@language" in value and not isinstance(value["@language"], str):
        found.append(
            Violation(
                rule,
                f"{path}/@language",
                f"must be a language tag (a string), not {_kind(value['@language'])}",
            )
        )
    if "@direction" in value and value["@direction"] not in ("ltr", "rtl"):
        found.append(
            Violation(
                rule, f"{path}/@direction", f"must be ltr or rtl, not {_kind(value['@direction'])}"
            )
        )
    return found


def _validity(credential: dict[str, Any], rule: str) -> list[Violation]:
    start = credential.get("validFrom", _MISSING)
    end = credential.get("validUntil", _MISSING)
    found = _date(start, "/validFrom", rule, required=False, rfc3339=False)
    found += _date(end, "/validUntil", rule, required=False, rfc3339=False)
    if not found:
        begins, ends = _instant(start), _instant(end)
        if begins is not None and ends is not None and begins > ends:
            found.append(Violation(rule, "/validUntil", "must not be earlier than validFrom"))
    return found


# XML Schema dateTimeStamp (a dateTime with a mandatory time zone); RFC 3339 date-times are the
# same with 4-digit years, and may write `t` and `z` in lower case.
_STAMP = re.compile(
    r"(?P<year>-?(?:[1-9][0-9]{4,}|[0-9]{4}))-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"[Tt](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?"
    r"(?P<zone>[Zz]|[+-](?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))?"
)
_BARE_DATE = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(value: Any, path: str, rule: str, *, required: bool, rfc3339: bool) -> list[Violation]:
    example = "such as 2024-01-01T00:00:00Z"
    if value is _MISSING:
        return (
            [Violation(rule, path, f"required: a date and time with a time zone, {example}")]
            if required
            else []
        )
    if not isinstance(value, str):
        return [
            Violation(
                rule,
                path,
                f"must be a date and time with a time zone as a string, {example}, not {_kind(value)}",
            )
        ]
    if _BARE_DATE.fullmatch(value):
        return [
            Violation(
                rule,
                path,
                f"must be a date and time with a time zone, {example}, not a bare date ({_quote(value)})",
            )
        ]
    match = _STAMP.fullmatch(value)
    if match is None or (not rfc3339 and ("t" in value or "z" in value)):
        return [
            Violation(
                rule,
                path,
                f"must be a date and time with a time zone, {example}, not {_kind(value)}",
            )
        ]
    if match["zone"] is None:
        return [
            Violation(rule, path, f"has no time zone (end it with Z or ±hh:mm): {_quote(value)}")
        ]
    if (rfc3339 and len(match["year"]) != 4) or not _valid_fields(match):
        return [Violation(rule, path, f"is not a real date and time: {_quote(value)}")]
    return []


def _valid_fields(match: re.Match[str]) -> bool:
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"])
    if not 1 <= month <= 12:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS[month - 1] + (1 if month == 2 and leap else 0):
        return False
    fraction = match["fraction"] or ""
    end_of_day = hour == 24 and minute == 0 and second == 0 and not fraction.strip(".0")
    if not (hour <= 23 or end_of_day) or minute > 59 or second > 59:
        return False
    if match["zh"] is not None:
        zone_hours, zone_minutes = int(match["zh"]), int(match["zm"])
        if zone_minutes > 59 or zone_hours > 14 or (zone_hours == 14 and zone_minutes > 0):
            return False
    return True


def _instant(value: Any) -> datetime | None:
    """The moment a valid stamp names, when `datetime` can hold it (years 1 to 9999)."""
    match = _STAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["zone"] is None or not 1 <= int(match["year"]) <= 9999:
        return None
    if int(match["hour"]) == 24:
        return None
    offset = timedelta(0)
    if match["zh"] is not None:
        offset = timedelta(hours=int(match["zh"]), minutes=int(match["zm"]))
        offset = -offset if match["zone"][0] == "-" else offset
    micro = int(((match["fraction"] or ".0")[1:] + "000000")[:6])
    try:
        return datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            micro,
            tzinfo=timezone(offset),
        )
    except (ValueError, OverflowError):
        return None


# --- helpers --------------------------------------------------------------------------------


def _is_url(value: Any) -> bool:
    """An absolute URI with a scheme (`https:`, `did:`, `urn:` ...), per RFC 3986."""
    return (
        isinstance(value, str) and bool(value) and validate_rfc3986(value, rule="URI") is not None
    )


def _kind(value: Any) -> str:
    """What a JSON value is, for a message (a string is quoted, shortened)."""
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else _quote(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _quote(text: str) -> str:
    """`text` quoted (lone surrogates and control characters escaped), at most 80 characters."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
