"""The `validity_period` check: validFrom/validUntil (issuanceDate/expirationDate in VCDM 1.1)
and the JWT's nbf/exp, the stricter bound winning (RFC 7519: a token past its `exp` MUST NOT be
accepted, whatever validUntil says).

A date that is not a date is not an expiry: it makes the credential `invalid` (`malformed`),
never `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.verify.envelope import parse_time
from app.verify.schemas import CheckResult


@dataclass(frozen=True)
class Period:
    result: CheckResult
    detail: str
    not_yet_valid: bool = False
    malformed: bool = False


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def validity_period(credential: dict[str, Any], payload: dict[str, Any], now: datetime) -> Period:
    starts = [
        ("validFrom", credential.get("validFrom", credential.get("issuanceDate"))),
        ("nbf", payload.get("nbf")),
    ]
    ends = [
        ("validUntil", credential.get("validUntil", credential.get("expirationDate"))),
        ("exp", payload.get("exp")),
    ]
    bounds: dict[str, datetime] = {}
    for name, raw in starts + ends:
        if raw is None:
            continue
        # Credential fields are date-time strings; only the JWT claims are NumericDates.
        is_claim = name in {"nbf", "exp"}
        moment = parse_time(raw) if is_claim or isinstance(raw, str) else None
        if moment is None:
            return Period(
                CheckResult.fail, f"{name} is not a date-time: {str(raw)[:80]!r}.", malformed=True
            )
        bounds[name] = moment
    start = max((bounds[n] for n, _ in starts if n in bounds), default=None)
    end = min((bounds[n] for n, _ in ends if n in bounds), default=None)
    if start is not None and now < start:
        return Period(CheckResult.fail, f"Not valid until {_stamp(start)}.", not_yet_valid=True)
    if end is not None and now >= end:
        return Period(CheckResult.fail, f"Expired on {_stamp(end)}.")
    if end is not None:
        return Period(CheckResult.pass_, f"Valid until {_stamp(end)}.")
    return Period(CheckResult.pass_, "Valid, with no expiry date.")
