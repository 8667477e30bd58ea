"""The one settings object. Every knob the service has is read here, from `MICROCRED_*`."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the documented development default, refused in production


class Environment(StrEnum):
    development = "development"
    production = "production"


class LogFormat(StrEnum):
    json = "json"  # one JSON object a line, for log shippers
    console = "console"  # aligned, readable lines for a terminal


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MICROCRED_", extra="ignore")

    base_url: str = "http://localhost:8000"
    database_url: str = "sqlite:///./data/microcred.db"
    keys_dir: Path = Path("./keys")
    keys_passphrase: SecretStr | None = None
    admin_token: SecretStr | None = None
    env: Environment = Environment.development
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # One structured line per request (method, route, status, duration, request id; capability
    # tokens redacted). Off by default: it costs throughput (see README, Operations).
    access_log: bool = False
    # Log lines: json or console (default: json in production, console in development).
    log_format: LogFormat | None = None
    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error)$")
    # Prometheus metrics at /metrics. Without a token, only loopback clients may read them, and
    # in production nobody may (the endpoint answers 404 until a token is set).
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    qr_cache_size: int = Field(default=4096, ge=0)
    db_pool_size: int = Field(default=5, ge=1)
    # Fetching what foreign issuers publish (did:web documents, HTTPS key URLs, status lists).
    # Loopback addresses are refused like every private one unless this is set: for tests only,
    # refused in production.
    fetch_allow_loopback: bool = False
    # Seconds allowed to connect and between two reads; a whole fetch gets twice this.
    fetch_timeout: float = Field(default=5.0, gt=0, le=60)
    # Largest response body read, in bytes (a status list of 131,072 entries is ~16 KiB gzipped).
    fetch_max_bytes: int = Field(default=512 * 1024, ge=1024)
    # Seconds a successful fetch is reused (0 turns the cache off).
    fetch_cache_ttl: float = Field(default=300.0, ge=0)
    # An extra CA certificate file trusted for fetches, beside the public roots (tests, private PKI).
    fetch_ca_bundle: Path | None = None
    # JSON-LD contexts a credential names that are not shipped with the package are fetched
    # (through the same guarded fetcher); turned off, such a credential cannot be checked.
    remote_contexts: bool = True
    # Bulk issuance: rows and bytes one `POST /api/v1/credentials/batch` may carry; rows signed
    # and stored per transaction; seconds an idle job runner sleeps between looks at the queue.
    batch_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    job_chunk_size: int = Field(default=1000, ge=1, le=10_000)
    job_poll_interval: float = Field(default=1.0, gt=0, le=60)
    # Job runner threads per process (each takes its own chunks; 2 overlap database and CPU work
    # in a lone process; with a process per core, 1 does better: `serve --workers N` defaults to 1).
    job_threads: int = Field(default=2, ge=1, le=16)
    # Run the background threads (the bulk-job runner and the webhook dispatcher) in this process.
    # Turn off in processes that should only serve requests; some process must run them.
    background_workers: bool = True
    # Webhooks: seconds between two polls of the outbox by the dispatcher.
    webhook_poll_interval: float = Field(default=1.0, gt=0, le=60)
    # Seconds to connect and to wait for the receiver's answer to one delivery attempt.
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    # Retries wait base * 2^(attempt-1) seconds (with jitter), at most the max interval.
    webhook_retry_base: float = Field(default=5.0, gt=0)
    webhook_retry_max_interval: float = Field(default=3600.0, gt=0)
    # Attempts before a delivery is given up as failed (it can still be replayed).
    webhook_max_attempts: int = Field(default=12, ge=1, le=100)

    @field_validator("base_url")
    @classmethod
    def _base_url_is_an_origin(cls, value: str) -> str:
        value = value.rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                "MICROCRED_BASE_URL must be an http(s) origin such as https://badges.example.org"
            )
        if parts.query or parts.fragment:
            raise ValueError("MICROCRED_BASE_URL must not carry a query or fragment")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_is_a_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("MICROCRED_METRICS_TOKEN must be a secret of at least 16 characters")
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env is Environment.production:
            problems = []
            if self.admin_token is None or self.admin_token.get_secret_value() == DEV_ADMIN_TOKEN:
                problems.append("MICROCRED_ADMIN_TOKEN must be set to a secret of your own")
            elif len(self.admin_token.get_secret_value()) < 24:
                problems.append("MICROCRED_ADMIN_TOKEN must be at least 24 characters")
            if self.keys_passphrase is None:
                problems.append(
                    "MICROCRED_KEYS_PASSPHRASE must be set: private keys are encrypted at rest"
                )
            if urlsplit(self.base_url).scheme != "https":
                problems.append("MICROCRED_BASE_URL must be https in production")
            if self.fetch_allow_loopback:
                problems.append(
                    "MICROCRED_FETCH_ALLOW_LOOPBACK lets credentials make this service fetch from its own host; it is for tests only"
                )
            if problems:
                raise ValueError("insecure production settings: " + "; ".join(problems))
        return self

    @cached_property
    def did_host(self) -> str:
        """The did:web method-specific host part: the port's colon percent-encoded."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or "localhost"
        return f"{host}%3A{parts.port}" if parts.port else host

    @cached_property
    def did_path_prefix(self) -> str:
        """did:web path segments from a base URL mounted below the origin's root."""
        path = urlsplit(self.base_url).path.strip("/")
        return ":".join(path.split("/")) + ":" if path else ""

    def issuer_did(self, slug: str) -> str:
        return f"did:web:{self.did_host}:{self.did_path_prefix}issuers:{slug}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"
