"""The operator's trust list: entries added by hand or imported from a DCC issuer registry, and
the one lookup verification makes to call an issuer `listed`.

Identifiers are stored in canonical form (app/core/identifiers.py) and looked up in canonical
form, so that no spelling of a listed DID escapes its entry and none of an unlisted one finds it.
Services only flush: the request's (or command's) unit of work commits, so an import that fails
half-way writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core.db import add_unless_conflict, utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.identifiers import canonical_identifier
from app.trust import repository
from app.trust.models import (
    DCC_SOURCE_PREFIX,
    IDENTIFIER_MAX,
    MANUAL_SOURCE,
    SOURCE_MAX,
    TrustedIssuer,
)
from app.trust.schemas import TrustEntryCreate, TrustImportResult, first_error

DEFAULT_REGISTRY = "dcc"
MAX_REGISTRY_ENTRIES = 10_000
# How a DCC entry's members map onto ours, for error messages that use the file's names.
_DCC_NAMES = {"identifier": "DID", "note": "location"}


class TrustEntryNotFound(NotFound):
    pass


class DuplicateTrustEntry(Conflict):
    pass


class InvalidRegistry(Unprocessable):
    """A registry document that is not a DCC issuer registry, or has an unacceptable entry."""


def add_entry(
    session: Session, *, data: TrustEntryCreate, source: str = MANUAL_SOURCE
) -> TrustedIssuer:
    """List an issuer; DuplicateTrustEntry (409) if its identifier, in any spelling, is listed."""
    record = TrustedIssuer(
        identifier=data.identifier,
        name=data.name,
        url=data.url,
        note=data.note,
        source=source,
        created_at=utcnow(),
    )
    # The unique constraint decides, so two concurrent adds cannot both succeed.
    if not add_unless_conflict(session, record):
        existing = repository.by_identifier(session, data.identifier)
        raise DuplicateTrustEntry(
            f"{data.identifier} is on the trust list already.",
            entry_id=str(existing.id) if existing else None,
        )
    return record


def list_entries(session: Session) -> Sequence[TrustedIssuer]:
    """Every entry, by name."""
    return repository.list_all(session)


def get_entry(session: Session, *, entry_id: uuid.UUID) -> TrustedIssuer:
    entry = repository.get(session, entry_id)
    if entry is None:
        raise TrustEntryNotFound("No trust list entry has this id.")
    return entry


def find_entry(session: Session, *, ref: uuid.UUID | str) -> TrustedIssuer:
    """The entry named by its id (a UUID) or by its identifier in any spelling."""
    if isinstance(ref, uuid.UUID):
        return get_entry(session, entry_id=ref)
    try:
        return get_entry(session, entry_id=uuid.UUID(ref))
    except ValueError:
        pass
    entry = lookup(session, [ref])
    if entry is None:
        raise TrustEntryNotFound(f"{_quote(ref.strip())} is not on the trust list.")
    return entry


def remove_entry(session: Session, *, ref: uuid.UUID | str) -> TrustedIssuer:
    """Take an entry (by id or identifier) off the list; returns what was removed."""
    entry = find_entry(session, ref=ref)
    repository.delete_entry(session, entry)
    return entry


def lookup(session: Session, identifiers: Sequence[str]) -> TrustedIssuer | None:
    """The trust list entry of the first candidate identifier that is listed, else None.

    The verifier passes what a credential claims, most specific first (the issuer id, then the
    signing key's DID or https origin); each is canonicalised (a DID URL loses its fragment, an
    https URL becomes its origin). One query. Candidates that cannot be listed are dropped
    before it: stored identifiers are ASCII and at most IDENTIFIER_MAX long, PostgreSQL would
    refuse a NUL rather than find nothing, and nothing a credential claims may make this fail.
    """
    candidates: list[str] = []
    for value in identifiers:
        if not isinstance(value, str) or len(value) > 2 * IDENTIFIER_MAX or "\x00" in value:
            continue
        try:
            canonical = canonical_identifier(value)
        except UnicodeError:  # a lone surrogate (JSON allows "\ud800") cannot be %-encoded
            continue
        if (
            canonical
            and canonical.isascii()
            and len(canonical) <= IDENTIFIER_MAX
            and canonical not in candidates
        ):
            candidates.append(canonical)
    if not candidates:
        return None
    found = {entry.identifier: entry for entry in repository.by_identifiers(session, candidates)}
    return next((found[c] for c in candidates if c in found), None)


# --- Digital Credentials Consortium issuer registries ----------------------------------------


def registry_source(registry: str) -> str:
    """`dcc-registry:<name>`: the source of the entries imported from the named registry."""
    name = registry.strip()
    if not name or len(DCC_SOURCE_PREFIX) + len(name) > SOURCE_MAX:
        raise InvalidRegistry(
            f"The registry name must have 1 to {SOURCE_MAX - len(DCC_SOURCE_PREFIX)} characters."
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidRegistry("The registry name must not contain control characters.")
    return DCC_SOURCE_PREFIX + name


def _quote(key: str) -> str:
    return repr(key if len(key) <= 80 else key[:80] + "…")


def parse_dcc_registry(document: Any) -> list[TrustEntryCreate]:
    """The entries of a DCC issuer registry document (the parsed JSON), validated.

    The format (github.com/digitalcredentials/issuer-registry, community-registry,
    sandbox-registry): `{"meta": {"created", "updated"}, "registry": {"<DID>": {"name",
    "location"?, "url"?}}}`. The location becomes the entry's note. Raises InvalidRegistry naming
    the first thing wrong; members beyond these are ignored.
    """
    if not isinstance(document, dict):
        raise InvalidRegistry(
            'A DCC issuer registry is a JSON object {"meta": {…}, "registry": {"did:…": {…}}}; '
            f"this is a JSON {_json_type(document)}."
        )
    meta = document.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidRegistry(f'"meta" must be an object, not a {_json_type(meta)}.')
    registry = document.get("registry")
    if not isinstance(registry, dict):
        raise InvalidRegistry(
            'The document has no "registry" object (a DCC issuer registry maps each issuer '
            'DID to {"name", "location", "url"}).'
        )
    if len(registry) > MAX_REGISTRY_ENTRIES:
        raise InvalidRegistry(
            f"The registry has {len(registry)} entries; at most {MAX_REGISTRY_ENTRIES} are imported."
        )
    entries: list[TrustEntryCreate] = []
    seen: dict[str, str] = {}
    for key, value in registry.items():
        if not isinstance(value, dict):
            raise InvalidRegistry(
                f"Registry entry {_quote(key)} must be an object with a name, "
                f"not a {_json_type(value)}."
            )
        fields = {"identifier": key}
        for ours, theirs in (("name", "name"), ("url", "url"), ("note", "location")):
            if value.get(theirs) is not None:
                fields[ours] = value[theirs]
        try:
            entry = TrustEntryCreate.model_validate(fields)
        except ValidationError as exc:
            raise InvalidRegistry(
                f"Registry entry {_quote(key)}: {first_error(exc, _DCC_NAMES)}"
            ) from None
        if entry.identifier in seen:
            raise InvalidRegistry(
                f"Registry entries {_quote(seen[entry.identifier])} and {_quote(key)} name the "
                f"same issuer ({entry.identifier})."
            )
        seen[entry.identifier] = key
        entries.append(entry)
    return entries


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null"


def import_dcc_registry(
    session: Session,
    document: Any,
    *,
    registry: str = DEFAULT_REGISTRY,
    replace_source: bool,
) -> TrustImportResult:
    """Import a DCC issuer registry as entries of source `dcc-registry:<registry>`.

    Idempotent: an identifier this registry brought before has its name, url and note updated;
    one listed by hand or by another registry is left alone (`skipped`: the operator's own
    entry wins). With `replace_source`, entries of this source that the document no longer
    holds are removed. The whole document is checked before anything is written.
    """
    source = registry_source(registry)
    entries = parse_dcc_registry(document)
    existing = {
        e.identifier: e for e in repository.by_identifiers(session, [e.identifier for e in entries])
    }
    added = updated = unchanged = skipped = removed = 0
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for entry in entries:
        record = existing.get(entry.identifier)
        if record is None:
            new_rows.append(
                {
                    "id": uuid.uuid4(),
                    "identifier": entry.identifier,
                    "name": entry.name,
                    "url": entry.url,
                    "note": entry.note,
                    "source": source,
                    "created_at": now,
                }
            )
        elif record.source != source:
            skipped += 1
        elif (record.name, record.url, record.note) == (entry.name, entry.url, entry.note):
            unchanged += 1
        else:
            record.name, record.url, record.note = entry.name, entry.url, entry.note
            updated += 1
    inserted = repository.insert_new(session, new_rows)
    added = len(inserted)
    skipped += len(new_rows) - added  # listed concurrently, by another source or this one
    if replace_source:
        keep = {e.identifier for e in entries}
        gone = [e.id for e in repository.of_source(session, source) if e.identifier not in keep]
        repository.delete_ids(session, gone)
        removed = len(gone)
    session.flush()
    return TrustImportResult(
        source=source,
        added=added,
        updated=updated,
        unchanged=unchanged,
        removed=removed,
        skipped=skipped,
    )
