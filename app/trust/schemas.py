"""Request and response bodies of the trust list, and the rules an entry's fields obey.

The rules live here, not in the routes, because three doors lead to the list (the operator API,
`microcred trust`, a DCC registry import) and each must refuse exactly what the others refuse.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from app.core.identifiers import canonical_did, canonical_origin, domain_of
from app.trust.models import IDENTIFIER_MAX, NAME_MAX, NOTE_MAX, URL_MAX, TrustedIssuer

# did:<method>:<method-specific-id> (W3C DID Core §3.1), on the canonical form: the id is idchars
# (letters, digits, '.', '-', '_', %-escapes) and colons, and does not end with a colon. Plus '~':
# canonicalisation decodes %7E (unreserved in RFC 3986), which DID syntax keeps encoded.
_DID = re.compile(
    r"did:[a-z0-9]+:(?:[A-Za-z0-9._~:-]|%[0-9A-F]{2})*(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})", re.ASCII
)
# A DNS name (lower-case, as the canonical forms have it); internationalised names in A-label form.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
# Shown on verification pages: control characters would only disguise the text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _valid_host(host: str | None) -> bool:
    if not host or len(host) > 253:
        return False
    if ":" in host:  # an IPv6 literal, bracketed (did:web) or not (a URL's hostname)
        try:
            ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return True
    return _HOST.fullmatch(host) is not None


def _valid_did_web_host(did: str) -> bool:
    """The host of a canonical did:web, with its port (percent-encoded) if any."""
    host = unquote(did[len("did:web:") :].split(":", 1)[0])
    if not host.startswith("[") and ":" in host:
        host, port = host.rsplit(":", 1)
        if not (port.isdigit() and 0 < int(port) < 65536):
            return False
    elif host.startswith("[") and not host.endswith("]"):
        host, _, port = host.rpartition(":")
        if not (port.isdigit() and 0 < int(port) < 65536):
            return False
    return _valid_host(host)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; say so rather than let the driver fail.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def trusted_identifier(value: str) -> str:
    """The canonical form under which an issuer is listed: a DID, or the origin of an https URL.

    Raises ValueError (with the reason) for anything else. A DID URL with a fragment or query
    names a key or a resource, not an issuer, and is refused rather than silently widened to the
    whole DID; an https URL is listed as its origin, since the origin is what serves the key.
    """
    text = _no_nul(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > IDENTIFIER_MAX:
        raise ValueError(f"must be at most {IDENTIFIER_MAX} characters")
    if text[:4].lower() == "did:":
        if "#" in text or "?" in text:
            raise ValueError("a DID URL with a fragment or query is not an issuer: give the DID")
        did = canonical_did(text)
        if not _DID.fullmatch(did):
            raise ValueError(
                "is not a DID: did:<method>:<id>, the id made of letters, digits, '.', '-', '_', "
                "':' and %-escapes"
            )
        if did.startswith("did:web:") and not _valid_did_web_host(did):
            raise ValueError("is a did:web without a valid host name (and port)")
        if len(did) > IDENTIFIER_MAX:
            raise ValueError(f"must be at most {IDENTIFIER_MAX} characters")
        return did
    if text[:8].lower() == "https://":
        origin = canonical_origin(text)
        if origin is None or not _valid_host(domain_of(origin)) or "@" in urlsplit(text).netloc:
            raise ValueError("is not an https URL with a valid host name (and no user name)")
        return origin
    raise ValueError("must be a DID (did:web:…, did:key:…) or an https URL")


def _https_url(value: str) -> str:
    value = value.strip()
    if any(c.isspace() for c in value) or _CONTROL.search(value):
        raise ValueError("must not contain spaces or control characters")
    origin = canonical_origin(value)
    if origin is None or not _valid_host(domain_of(origin)) or "@" in urlsplit(value).netloc:
        raise ValueError("must be an https URL with a valid host name (and no user name)")
    return value


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, line breaks, …)")
    return value


def _text_with_lines(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("must not contain control characters (NUL, …)")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


TrustIdentifier = Annotated[
    str,
    StringConstraints(max_length=IDENTIFIER_MAX),
    AfterValidator(trusted_identifier),
    Field(
        description="The issuer's DID, or an https URL (listed as its origin, which then covers "
        "every key URL under it). Stored in canonical form: the spellings of a did:web host and "
        "its %-escapes all match the one entry.",
        examples=["did:web:northwind.example:issuers:data", "https://badges.northwind.example"],
    ),
]
TrustName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX),
    AfterValidator(_plain_text),
    Field(description="The name verification shows for this issuer.", examples=["Northwind"]),
]
TrustUrl = Annotated[
    str,
    StringConstraints(max_length=URL_MAX),
    AfterValidator(_no_nul),
    AfterValidator(_https_url),
    Field(description="The issuer's website (https).", examples=["https://northwind.example"]),
]
TrustNote = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=NOTE_MAX),
    AfterValidator(_text_with_lines),
    Field(description="The operator's note (for a DCC registry entry: its location)."),
]


class TrustEntryCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "identifier": "did:web:badges.university.example",
                    "name": "University of Example",
                    "url": "https://university.example",
                }
            ]
        },
    )

    identifier: TrustIdentifier
    name: TrustName
    url: Annotated[TrustUrl | None, BeforeValidator(_blank_is_none)] = None
    note: Annotated[TrustNote | None, BeforeValidator(_blank_is_none)] = None


class TrustEntryRead(BaseModel):
    id: uuid.UUID
    identifier: str = Field(description="Canonical DID or https origin.")
    name: str
    url: str | None
    note: str | None
    source: str = Field(
        description='"manual", or "dcc-registry:<name>" for an entry a registry import brought.'
    )
    domain: str | None = Field(
        description="The domain that serves the issuer's keys (did:web and https), else null."
    )
    created_at: datetime

    @classmethod
    def from_record(cls, record: TrustedIssuer) -> TrustEntryRead:
        return cls(
            id=record.id,
            identifier=record.identifier,
            name=record.name,
            url=record.url,
            note=record.note,
            source=record.source,
            domain=domain_of(record.identifier),
            created_at=record.created_at,
        )


class TrustImportResult(BaseModel):
    source: str = Field(description="The source the imported entries carry.")
    added: int
    updated: int = Field(description="Entries of this source whose name, url or note changed.")
    unchanged: int
    removed: int = Field(
        description="Entries of this source absent from the registry (only with replace=true)."
    )
    skipped: int = Field(
        description="Entries listed already from another source (manual or another registry): "
        "left as they are."
    )


def first_error(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """`field: message` of a validation error's first problem, for one-line messages."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    where = (names or {}).get(where, where)
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


# The JSON Schema of a Digital Credentials Consortium issuer registry file, for the OpenAPI
# document (the import endpoint reads the body itself to name what is wrong the way the CLI does).
DCC_REGISTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Digital Credentials Consortium issuer registry "
    "(e.g. https://digitalcredentials.github.io/community-registry/registry.json).",
    "required": ["registry"],
    "properties": {
        "meta": {
            "type": "object",
            "properties": {"created": {"type": "string"}, "updated": {"type": "string"}},
        },
        "registry": {
            "type": "object",
            "description": "Issuer DID → its entry.",
            "additionalProperties": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "location": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
    },
    "example": {
        "meta": {"created": "2022-10-27T17:57:31+00:00", "updated": "2025-03-12T16:20:00+00:00"},
        "registry": {
            "did:web:credentials.northwind.example": {
                "name": "Northwind University",
                "location": "Cambridge, MA, USA",
                "url": "https://northwind.example",
            }
        },
    },
}
