"""Prometheus metrics: what the service counts, and the `/metrics` exposition that serves them.

Counters and histograms live in the process that counts. Under `microcred serve --workers N`
each worker is a process of its own: `serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory
before the workers start, prometheus-client then keeps every value in a memory-mapped file there,
and a scrape of any worker adds up all of them. What is state rather than an event (jobs waiting,
webhook deliveries by state) is read from the database at scrape time, so it is right across
workers and replicas alike.

Labels stay bounded: a route is its template (`/issuers/{slug}`), never the path; an unknown
method is `OTHER`; nothing is labelled by issuer.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.core.config import Environment, Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No `*_created` series: one more per labelled child, and Prometheus reads starts from resets.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus-client
P = ParamSpec("P")
R = TypeVar("R")

HTTP_REQUESTS = Counter(
    "microcred_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "microcred_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CREDENTIALS_ISSUED = Counter(
    "microcred_credentials_issued",
    "Credentials signed and stored, by signing algorithm and way of issuance (api, batch).",
    ["algorithm", "via"],
)
VERIFICATIONS = Counter(
    "microcred_verifications",
    "Verifications (API, pages, CLI), by the verdict's status.",
    ["status"],
)
REMOTE_FETCHES = Counter(
    "microcred_remote_fetches",
    "Fetches of foreign issuers' documents that went to the network (cache hits are not "
    "counted), by outcome: ok, refused (a guarded address), timeout, error.",
    ["outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "microcred_webhook_delivery_attempts",
    "Webhook delivery attempts recorded, by the state they left the delivery in "
    "(succeeded, retry, failed, cancelled).",
    ["outcome"],
)
JOB_ROWS = Counter(
    "microcred_job_rows_settled",
    "Bulk-job rows settled (issued, existing or failed) by the job runners of this service.",
)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request. The label children are looked up once per (method, route,
    status) and kept: the per-request cost is a dict lookup, an increment and an observation."""
    key = (method, route, status)
    children = _request_children.get(key)
    if children is None:
        label = method if method in METHODS else "OTHER"
        children = (
            HTTP_REQUESTS.labels(label, route, str(status)),
            HTTP_DURATION.labels(label, route),
        )
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def count_fetches(fetch: Callable[P, R]) -> Callable[P, R]:
    """Count each call of `fetch` (a network fetch) by outcome; exceptions pass through."""

    @wraps(fetch)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = fetch(*args, **kwargs)
        except Exception as exc:
            REMOTE_FETCHES.labels(_fetch_outcome(exc)).inc()
            raise
        REMOTE_FETCHES.labels("ok").inc()
        return result

    return counted


def _fetch_outcome(exc: BaseException) -> str:
    if type(exc).__name__ == "RefusedAddress":  # app.core.fetch imports this module, not back
        return "refused"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "Timeout" in type(seen).__name__:
            return "timeout"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "timeout" if "timed out" in text or "too long" in text else "error"


# --- exposition -----------------------------------------------------------------------------------


class _Sampled(Collector):
    """Metrics computed when scraped (from the database): `sample()` yields metric families."""

    def __init__(self, sample: Callable[[], Iterable[Metric]]) -> None:
        self.sample = sample

    def collect(self) -> Iterable[Metric]:
        return self.sample()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(sampled: Iterable[Callable[[], Iterable[Metric]]] = ()) -> tuple[bytes, str]:
    """The text exposition of every metric of this service (all worker processes), and its
    content type."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
    else:
        registry.register(_Sampled(REGISTRY.collect))
    for sample in sampled:
        registry.register(_Sampled(sample))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a stopped worker's live values (multi-process mode; nothing otherwise)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # as above


# --- who may read them ----------------------------------------------------------------------------


def scrape_refusal(settings: Settings, authorization: str | None, client: str | None) -> int | None:
    """Why a scrape is refused, as an HTTP status (None: allowed).

    With `MICROCRED_METRICS_TOKEN` set, the bearer token is required (401 without it). Without
    one, development serves loopback clients only (403 for others) and production serves nobody
    (404, as if there were no endpoint): behind a reverse proxy every client may look like
    loopback.
    """
    if not settings.metrics_enabled:
        return 404
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return 401
    if settings.env is Environment.production:
        return 404
    return None if _is_loopback(client) else 403


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
