"""Who stands behind the issuer: the trust level of a verdict (the contract's "Trust" section).

A valid signature bound to the issuer id proves the holder of that id's key signed. Whether the
*name* on the credential means anything depends on who vouches for the key:

- `registered`: our own register (we created the issuer and hold its key);
- `listed`: the operator's trust list names the issuer (its name is the one shown);
- `domain`: a did:web document or an https key URL: the domain serving the key vouches;
- `self_asserted`: did:key, did:jwk, an embedded key: anyone can mint one and call it Harvard.

The `trust` check passes for the first three and fails for `self_asserted`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.identifiers import canonical_origin, domain_of
from app.trust import service as trust_list
from app.verify.keys import KeyKind, ResolvedKey, did_of
from app.verify.schemas import CheckResult, TrustLevel, TrustSummary

_DOMAIN_KINDS = frozenset({KeyKind.did_web, KeyKind.https})


def _host(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def _bare(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def unestablished(reason: str) -> tuple[CheckResult, str, TrustSummary]:
    """No bound key, so nobody vouches for anything about the issuer."""
    return (
        CheckResult.skipped,
        f"Not checked: {reason}",
        TrustSummary(
            level=TrustLevel.self_asserted,
            detail=f"The issuer's identity is not established: {reason}",
        ),
    )


def assess(
    session: Session,
    settings: Settings,
    *,
    key: ResolvedKey,
    issuer_id: str,
    issuer_name: str | None,
    issuer_url: str | None,
) -> tuple[CheckResult, str, TrustSummary]:
    """(check result, detail, summary) for an issuer whose key is bound to its id."""
    claimed = f"'{issuer_name}'" if issuer_name else "(no name)"
    if key.kind is KeyKind.register:
        service = urlsplit(settings.base_url).hostname or settings.base_url
        detail = f"{issuer_name or issuer_id} is registered with {service}, which holds its keys."
        return (
            CheckResult.pass_,
            detail,
            TrustSummary(level=TrustLevel.registered, name=issuer_name, detail=detail),
        )
    candidates = [issuer_id]
    if key.controller is not None:
        candidates.append(did_of(key.controller))
    origin = canonical_origin(issuer_id)
    if origin is not None:
        candidates.append(origin)
    entry = trust_list.lookup(session, candidates)
    if entry is not None:
        detail = f"On this service's trust list as {entry.name}"
        detail += (
            f" (the credential calls its issuer {claimed})." if issuer_name != entry.name else "."
        )
        return (
            CheckResult.pass_,
            detail,
            TrustSummary(level=TrustLevel.listed, name=entry.name, detail=detail),
        )
    if key.kind is KeyKind.trusted:
        detail = (
            f"Signed with a key you supplied as trusted; the name {claimed} is the issuer's own."
        )
        return (
            CheckResult.pass_,
            detail,
            TrustSummary(level=TrustLevel.listed, name=issuer_name, detail=detail),
        )
    if key.kind in _DOMAIN_KINDS:
        domain = domain_of(issuer_id)
        url_host = _host(issuer_url)
        matches = None if url_host is None or domain is None else _bare(url_host) == _bare(domain)
        detail = f"The key is published by {domain}; the name {claimed} is the issuer's own"
        if matches is True:
            detail += f", and its website {issuer_url} is on the same domain."
        elif matches is False:
            detail += f", and its website {issuer_url} is on another domain ({url_host})."
        else:
            detail += "."
        return (
            CheckResult.pass_,
            detail,
            TrustSummary(
                level=TrustLevel.domain,
                domain=domain,
                domain_matches_url=matches,
                name=issuer_name,
                detail=detail,
            ),
        )
    how = {
        KeyKind.did_key: "a did:key",
        KeyKind.did_jwk: "a did:jwk",
        KeyKind.embedded: "a key embedded in the token",
    }.get(key.kind, "a key nobody vouches for")
    detail = (
        f"The signature is genuine, but it is made with {how}, which anyone can create: "
        f"the name {claimed} is self-declared, and nobody confirms who the issuer is."
    )
    return (
        CheckResult.fail,
        detail,
        TrustSummary(level=TrustLevel.self_asserted, name=issuer_name, detail=detail),
    )
