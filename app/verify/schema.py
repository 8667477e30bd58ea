"""The `schema` check: the official OB 3.0 AchievementCredential JSON schema, for OB credentials.

A pure function of the credential, remembered by the signed bytes it came from (the same QR
code is scanned again and again, and validating costs more than the signature).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeGuard

from app.core.standards import VC2_CONTEXT, schema_errors
from app.verify.envelope import strip_jwt_claims, types_of
from app.verify.schemas import CheckResult

Outcome = tuple[CheckResult, str]

_OUTCOMES: OrderedDict[bytes, Outcome] = OrderedDict()
_LOCK = threading.Lock()
_MAX = 4096


def is_status_pair(status: Any) -> TypeGuard[list[dict[str, Any]]]:
    return (
        isinstance(status, list)
        and len(status) == 2
        and all(isinstance(e, dict) and e.get("type") == "BitstringStatusListEntry" for e in status)
        and sorted(str(e.get("statusPurpose")) for e in status) == ["revocation", "suspension"]
    )


def schema_outcome(credential: dict[str, Any]) -> Outcome:
    """(result, detail) of the OB 3.0 schema check."""
    types = types_of(credential)
    if "OpenBadgeCredential" not in types and "AchievementCredential" not in types:
        return (
            CheckResult.skipped,
            "Not an Open Badges credential; the OB 3.0 schema does not apply.",
        )
    contexts = credential.get("@context")
    if not isinstance(contexts, list) or not contexts or contexts[0] != VC2_CONTEXT:
        return (
            CheckResult.skipped,
            "A VCDM 1.1 Open Badge; the official OB 3.0 schema here describes the VCDM 2.0 form.",
        )
    document = strip_jwt_claims(credential)
    # An embedded proof is judged by the proof checks, never by the schema (whose strict variant
    # wants an array where Data Integrity issuers send one object): a proof this verifier does
    # not check must not make a genuine badge "invalid".
    document.pop("proof", None)
    status = document.get("credentialStatus")
    note = ""
    if is_status_pair(status):
        # The one deviation we accept: a revocation and a suspension entry side by side (VCDM 2.0
        # allows an array; the strict OB 3.0 schema allows one object). Each entry is validated
        # in place of the pair, so everything else is held to the schema as usual.
        errors = [
            err
            for entry in status
            for err in schema_errors({**document, "credentialStatus": entry})
        ]
        note = " (credentialStatus holds a revocation and a suspension entry, as VCDM 2.0 allows)"
    else:
        errors = schema_errors(document)
    if errors:
        return CheckResult.fail, "Does not match the OB 3.0 schema: " + "; ".join(errors)
    return CheckResult.pass_, "Matches the OB 3.0 AchievementCredential schema" + note + "."


def cached_outcome(
    key_text: str | None, compute: Callable[[dict[str, Any]], Outcome], credential: dict[str, Any]
) -> Outcome:
    """`compute(credential)`, remembered by SHA-256 of `key_text` (the signed payload segment,
    which the credential is a function of) in a bounded LRU shared by all threads."""
    if key_text is None:
        return compute(credential)
    key = hashlib.sha256(key_text.encode()).digest() + compute.__name__.encode()
    with _LOCK:
        outcome = _OUTCOMES.get(key)
        if outcome is not None:
            _OUTCOMES.move_to_end(key)
            return outcome
    outcome = compute(credential)
    with _LOCK:
        _OUTCOMES[key] = outcome
        while len(_OUTCOMES) > _MAX:
            _OUTCOMES.popitem(last=False)
    return outcome
