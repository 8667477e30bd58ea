"""Standards data shipped with the package: contexts and the OB 3.0 JSON schema, never fetched."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator, FormatChecker

VC2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
VC1_CONTEXT = "https://www.w3.org/2018/credentials/v1"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
# Defines the credentialSchema type `1EdTechJsonSchemaValidator2019` (and the 1EdTech revocation
# list and refresh types), which neither VC v2 nor the OB 3.0 context defines.
OB3_EXTENSIONS_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"
OB3_SCHEMA_ID = (
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
)

STANDARDS_DIR = Path(__file__).resolve().parent.parent / "standards"


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((STANDARDS_DIR / name).read_text("utf-8"))
    return data


@cache
def achievement_credential_validator() -> Draft201909Validator:
    """The official OB 3.0 AchievementCredential schema (VCDM 2.0 variant), with date-time checks."""
    schema = load("achievementcredential.json")
    return Draft201909Validator(
        schema, format_checker=FormatChecker(formats=("date-time", "uri", "email"))
    )


_RESULTS: OrderedDict[bytes, list[str]] = OrderedDict()
_RESULTS_LOCK = threading.Lock()
_RESULTS_MAX = 4096


def schema_errors(credential: dict[str, Any], *, limit: int = 5) -> list[str]:
    """Human-readable schema violations of an OB 3.0 credential, most specific first.

    Results are remembered by content (a QR code is scanned again and again, and validating costs
    more than the signature check)."""
    key = hashlib.sha256(
        json.dumps(credential, sort_keys=True, default=str).encode()
    ).digest() + bytes([limit])
    with _RESULTS_LOCK:
        found = _RESULTS.get(key)
        if found is not None:
            _RESULTS.move_to_end(key)
            return list(found)
    errors = _schema_errors(credential, limit=limit)
    with _RESULTS_LOCK:
        _RESULTS[key] = errors
        while len(_RESULTS) > _RESULTS_MAX:
            _RESULTS.popitem(last=False)
    return list(errors)


def _schema_errors(credential: dict[str, Any], *, limit: int) -> list[str]:
    validator = achievement_credential_validator()
    errors = sorted(
        validator.iter_errors(credential), key=lambda e: (-len(e.absolute_path), e.message)
    )
    out = []
    for error in errors[:limit]:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        out.append(f"{where}: {error.message[:300]}")
    return out
