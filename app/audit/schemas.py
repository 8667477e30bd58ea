"""Response bodies of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int = Field(description="Position in the issuer's chain, from 1 without gaps.")
    type: str
    subject: str | None
    data: dict[str, Any]
    created_at: datetime
    prev_hash: str = Field(description="The hash of the previous event (64 zeros for the first).")
    hash: str = Field(description="SHA-256 over this event and prev_hash.")


class ChainBreak(BaseModel):
    """The first link of one chain that does not check out."""

    issuer_id: uuid.UUID
    issuer_slug: str | None = None
    seq: int | None = Field(description="The event's seq; None when the head itself is wrong.")
    event_id: uuid.UUID | None
    problem: str

    def describe(self) -> str:
        where = f"issuer {self.issuer_slug or self.issuer_id}"
        if self.seq is not None:
            where += f", event seq {self.seq} (id {self.event_id})"
        else:
            where += ", chain head"
        return f"{where}: {self.problem}"


class ChainReport(BaseModel):
    chains: int
    events: int
    breaks: list[ChainBreak]

    @property
    def intact(self) -> bool:
        return not self.breaks
