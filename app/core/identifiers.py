"""Canonical forms of issuer identifiers, so that spelling variants compare equal.

A did:web's host is a DNS name (case-insensitive) whose port colon is percent-encoded, and
percent-encoding itself is case-insensitive (RFC 3986 §6.2.2.1): `did:web:Example.COM%3a8443:x`
names the same document as `did:web:example.com%3A8443:x`. An attacker who writes our own DID
in another spelling must still be held to our register, and a trust-list entry must match every
spelling of the DID it lists. Path segments stay case-sensitive (they are URL path segments).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# RFC 3986 unreserved characters: percent-encoding them changes nothing (§6.2.2.2).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalise_percent(segment: str) -> str:
    """Upper-case hex digits, and decode what never needed encoding."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group()[1:], 16))
        return char if char in _UNRESERVED else match.group().upper()

    return _PERCENT.sub(fix, segment)


def canonical_did(did: str) -> str:
    """The canonical spelling of a DID (only did:web has variants); no fragment, no query."""
    did = did.strip().split("#", 1)[0].split("?", 1)[0]
    scheme, _, rest = did.partition(":")
    method, _, ident = rest.partition(":")
    if scheme.lower() != "did" or not method:
        return did
    method = method.lower()
    if method != "web":
        return f"did:{method}:{ident}"
    host, *segments = ident.split(":")
    # ':' (the port) becomes %3A again; a lone surrogate (JSON allows "\ud800") is escaped, so
    # that a hostile id compares unequal to everything instead of raising.
    host = quote(
        unquote(host, errors="surrogateescape").lower(), safe="[]", errors="backslashreplace"
    )
    return ":".join([f"did:web:{host}", *(_normalise_percent(s) for s in segments)])


def canonical_origin(url: str) -> str | None:
    """`https://host[:port]` of an https URL, lower-cased and without a default port; else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"


def canonical_identifier(value: str) -> str:
    """An issuer identifier as the trust list and the register compare it: a canonical DID, an
    https origin for https URLs, anything else unchanged (stripped)."""
    value = value.strip()
    if value.lower().startswith("did:"):
        return canonical_did(value)
    origin = canonical_origin(value)
    return origin if origin is not None else value


def domain_of(identifier: str) -> str | None:
    """The domain that vouches for a did:web or https identifier (`northwind.example`), else None."""
    value = canonical_identifier(identifier)
    if value.startswith("did:web:"):
        host = unquote(value[len("did:web:") :].split(":", 1)[0])
        return host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if value.startswith("https://"):
        return urlsplit(value).hostname
    return None
