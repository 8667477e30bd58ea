"""The yardstick of bench/paths.py: a minimal FastAPI app doing only what a bare implementation must.

It answers the paths microcred is measured on, at the same URLs, so one wrk command measures both:

- `GET /health`: a constant, no I/O (liveness);
- `POST /api/v1/verify` (`{"credential": "<JWT>"}`): decode the ES256 JWT with PyJWT and the
  issuer's public key, parsed once at start-up — the signature check alone;
- `GET /credentials/{id}`: the same signature check of that credential (held in memory), and a
  small HTML page naming it;
- `POST /api/v1/credentials` (the issuance body, parsed with pydantic): sign the page
  credential's claims with a new id (the same size and shape as microcred's) with PyJWT and a key parsed once, and insert one row with one commit (SQLAlchemy Core, a pooled
  connection, in FastAPI's threadpool) into SQLite in WAL mode — with microcred's pragmas — or
  into PostgreSQL.

Configured by environment (bench/paths.py sets it): BENCH_REF_DATABASE_URL, BENCH_REF_JWK (the
issuer's public JWK, JSON), BENCH_REF_CREDENTIALS (a JSON file `{"<id>": "<JWT>"}` of the page
path). Served by bench/serve.py like microcred: uvicorn, uvloop, httptools, one worker.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, EmailStr
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, create_engine, event, insert
from sqlalchemy.engine import Engine, make_url

metadata = MetaData()
issued = Table(
    "reference_credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("achievement_id", String(64), nullable=False),
    Column("recipient_email", String(320), nullable=False),
    Column("jwt", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)


class VerifyBody(BaseModel):
    credential: str


class Recipient(BaseModel):
    email: EmailStr
    name: str | None = None


class IssueBody(BaseModel):
    achievement_id: str
    recipient: Recipient


def _engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, pool_size=5, max_overflow=10)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        return engine
    return create_engine(url, pool_size=5, max_overflow=10)


def create_app() -> FastAPI:
    engine = _engine(os.environ["BENCH_REF_DATABASE_URL"])
    metadata.create_all(engine)
    public_key = jwt.PyJWK(json.loads(os.environ["BENCH_REF_JWK"])).key
    pages: dict[str, str] = json.loads(Path(os.environ["BENCH_REF_CREDENTIALS"]).read_text())
    signing_key = ec.generate_private_key(ec.SECP256R1())
    kid = "reference-key-1"
    decode_options = {"verify_aud": False}
    # What the reference signs: the page credential's own claims with a new id, so the payload
    # has the size and shape of microcred's.
    template = jwt.decode(
        next(iter(pages.values())), public_key, algorithms=["ES256"], options=decode_options
    )
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/verify")
    async def verify(body: VerifyBody) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                body.credential, public_key, algorithms=["ES256"], options=decode_options
            )
        except jwt.PyJWTError as exc:
            return {"verified": False, "error": str(exc)}
        return {"verified": True, "id": claims.get("jti")}

    @app.get("/credentials/{credential_id}", response_class=HTMLResponse)
    async def page(credential_id: str) -> str:
        token = pages.get(credential_id)
        if token is None:
            raise HTTPException(404)
        claims = jwt.decode(token, public_key, algorithms=["ES256"], options=decode_options)
        name = html.escape(str(claims.get("name", "")))
        return f"<!doctype html><title>{name}</title><h1>{name}</h1><p>Verified.</p>"

    @app.post("/api/v1/credentials", status_code=201)
    def issue(body: IssueBody) -> dict[str, str]:
        now = datetime.now(UTC)
        credential_id = str(uuid.uuid4())
        payload = {
            **template,
            "id": f"urn:uuid:{credential_id}",
            "jti": f"urn:uuid:{credential_id}",
            "validFrom": now.isoformat(timespec="seconds"),
            "nbf": int(now.timestamp()),
        }
        token = jwt.encode(payload, signing_key, algorithm="ES256", headers={"kid": kid})
        with engine.begin() as conn:
            conn.execute(
                insert(issued).values(
                    id=credential_id,
                    achievement_id=body.achievement_id,
                    recipient_email=body.recipient.email,
                    jwt=token,
                    issued_at=now,
                )
            )
        return {"id": credential_id, "jwt": token}

    return app
