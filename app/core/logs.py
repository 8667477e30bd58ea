"""Structured logs: one configuration for the whole process, and the request id every line carries.

Every log record (ours through `logging`, uvicorn's, the libraries') is rendered by one
structlog formatter: JSON lines in production (one object a line, for a log shipper), readable
colour-free columns in development. The request id lives in a context variable set by the request
middleware (`app/core/observe.py`), so a line logged anywhere during a request, also from the
thread pool a sync route runs in, names the request it belongs to; problem+json bodies carry the
same id (`app/core/errors.py`).
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import os
import re
from contextvars import ContextVar, Token
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.core.config import LogFormat, Settings

# What an incoming X-Request-ID may be to be kept (a proxy's or a client's correlation id):
# bounded, and from a charset that cannot forge log structure or smuggle markup. Anything else is
# replaced by an id of ours, never echoed.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("microcred_request_id", default=None)

# Secret-bearing path segments: capability tokens (management `mcm_`, portfolio `mcp_`), API keys
# and webhook secrets should they ever appear in a path, and whatever follows `/manage/`.
SECRET_PREFIXES = ("mcm_", "mcp_", "mck_", "whsec_")
REDACTED = "[redacted]"


# Ids of our own: a random prefix per process and a counter, 32 hex digits. Unique across processes
# and restarts without a system call per request (uuid4 reads os.urandom each time); not secret,
# as nothing but correlation rests on them.
_prefix = os.urandom(8).hex()
_counter = itertools.count()


def _new_prefix() -> None:
    global _prefix
    _prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker must not repeat its parent's ids


def current_request_id() -> str | None:
    """The id of the request being handled in this context, None outside a request."""
    return _request_id.get()


def start_request(header: bytes | None) -> tuple[str, Token[str | None]]:
    """Take the client's X-Request-ID when it is well-formed, else make one; bind it to this
    context until `end_request(token)`."""
    rid: str | None = None
    if header is not None:
        candidate = header.decode("latin-1")
        if _REQUEST_ID.fullmatch(candidate):
            rid = candidate
    if rid is None:
        rid = f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFFFFFF:016x}"
    return rid, _request_id.set(rid)


def end_request(token: Token[str | None]) -> None:
    _request_id.reset(token)


def redact_path(path: str) -> str:
    """`path` with capability tokens replaced: safe to write to a log."""
    if "_" not in path and "/manage/" not in path:
        return path  # the common case, with nothing to redact, stays a single scan
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment.startswith(SECRET_PREFIXES) or (i > 0 and segments[i - 1] == "manage"):
            segments[i] = REDACTED
    return "/".join(segments)


def _add_request_id(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    rid = _request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def _drop_color_message(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's copy of its message with terminal escapes
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # `log.info("…", extra={...})` fields become members of the line (the access line's)
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
    ]


def log_format(settings: Settings) -> LogFormat:
    """The configured format; by default JSON in production and console lines in development."""
    if settings.log_format is not None:
        return settings.log_format
    return LogFormat.json if settings.env.value == "production" else LogFormat.console


def logging_config(settings: Settings) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a microcred process (stderr, one formatter for all)."""
    fmt = log_format(settings)
    renderer: Processor
    if fmt is LogFormat.json:
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [structlog.processors.dict_tracebacks, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [renderer]
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": _shared_processors(),
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "structured",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own lines go through the root handler (one format); its access log is
            # replaced by ours (`MICROCRED_ACCESS_LOG`), which redacts capability URLs.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Route every logger of this process through the structured formatter.

    Called by the processes that serve or work (`microcred serve` and each of its workers,
    `microcred worker`), not by `create_app`: tests build many apps in one process, and pytest
    owns the logging configuration there.
    """
    logging.config.dictConfig(logging_config(settings))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.captureWarnings(True)
