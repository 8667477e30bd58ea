"""The one settings object. Every knob the service has is read here, from `MICROCRED_*`."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many
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
    # Seconds from a request's start by which its whole body must have arrived (408 after).
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
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
    # Seconds one whole fetch may take: DNS, connect, TLS, headers, body and redirects together
    # (a verification's fetches, side by side or one after another, get twice this in all).
    fetch_timeout: float = Field(default=5.0, gt=0, le=60)
    # Fetches running at once (threads of their own, not the request threadpool's); a fetch
    # that finds none free before its deadline fails (the check that needed it is `error`).
    fetch_concurrency: int = Field(default=8, ge=1, le=256)
    # Seconds a failed fetch is answered from memory before its URL is tried again (0: never),
    # so that a slow or broken host cannot be made to hold a fetch slot per request.
    fetch_failure_ttl: float = Field(default=30.0, ge=0)
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
    # Rate limits (the `limits` notation: "10/minute;100/hour"), see app/core/ratelimit.py.
    rate_limits_enabled: bool = True
    # Where counters live: memory:// (per process) or a shared store such as redis://host:6379.
    rate_limit_storage: str = "memory://"
    # Failed credential checks (operator token, API keys, management tokens, portfolio keys) per
    # client address, and per credential being guessed from any address.
    rate_limit_auth: str = "10/minute;100/hour"
    rate_limit_auth_per_credential: str = "30/minute;300/hour"
    # Requests per client address to the verify API, and /verify form posts.
    rate_limit_verify: str = "300/minute"
    rate_limit_verify_form: str = "30/minute"

    @field_validator(
        "rate_limit_auth",
        "rate_limit_auth_per_credential",
        "rate_limit_verify",
        "rate_limit_verify_form",
    )
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a rate limit such as '10/minute' or '5/2 seconds;100/hour'"
            ) from exc
        return value

    # /health: seconds one readiness result is reused (probes in between cost nothing), and the
    # free space below which the keys folder or the SQLite database's folder counts as full.
    health_cache_ttl: float = Field(default=1.0, ge=0, le=60)
    health_min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0)

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
            token = self.admin_token.get_secret_value() if self.admin_token else ""
            if not token.strip() or token == DEV_ADMIN_TOKEN:
                problems.append("MICROCRED_ADMIN_TOKEN must be set to a secret of your own")
            elif token != token.strip() or len(token) < 24 or len(set(token)) < 8:
                # Length alone lets "aaaa…" or 30 spaces pass; a secret has some variety. HTTP
                # strips the spaces around a header value, so a padded token could never match.
                problems.append(
                    "MICROCRED_ADMIN_TOKEN must be at least 24 characters, not blank-padded "
                    "or repetitive (e.g. `openssl rand -hex 32`)"
                )
            passphrase = self.keys_passphrase.get_secret_value() if self.keys_passphrase else ""
            if not passphrase.strip():
                problems.append(
                    "MICROCRED_KEYS_PASSPHRASE must be set (not empty or blank): private keys "
                    "are encrypted at rest"
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
