"""The one way this service reaches out to other sites: a guarded HTTPS GET with a cache
(and the POST that delivers webhooks, through the same guard).

Verification must read what foreign issuers publish (DID documents, JWKS, status lists), and a
verifier that fetches whatever URL a credential names is a server-side request forgery tool. So
every fetch here:

- is https only, with no userinfo, and names a host that can exist on the public Internet
  (single-label names and special-use domains such as `.local`, `.internal`, `.example` are
  refused before any lookup);
- resolves the host itself and refuses the request before opening any connection when ANY
  address is not public (private, loopback, link-local, multicast, reserved, unspecified, shared
  address space, and the same inside IPv4-mapped, 6to4, Teredo and NAT64 IPv6 addresses);
- connects to the address it validated (the request goes to the IP; the Host header and the TLS
  server name stay the hostname, so the certificate is still checked against the hostname), so a
  second DNS answer cannot redirect it (DNS rebinding);
- follows at most three redirects, only to the same origin, each hop validated again;
- ends by ONE wall-clock deadline (`MICROCRED_FETCH_TIMEOUT`), whatever is slow, and stops
  reading past a size cap;
- runs on one of a few fetch threads (`MICROCRED_FETCH_CONCURRENCY`), never more at once;
- caches successful responses for a while, and failures briefly (thread-safe, bounded).

The deadline. A fetch is DNS, connect, TLS handshake, request, response headers and body, for
each redirect hop; per-operation timeouts (httpx's connect/read timeouts) bound each socket
operation, not their sum, so a host that drips one header byte per second never trips a read
timeout. Since this module connects to the validated IP itself, it owns the sockets: every
connection is made through `_DeadlineBackend`, whose streams give each socket operation (connect,
handshake, each read and write) the smaller of its own timeout and the time left until the
fetch's deadline, and fail once none is left. The sum of all phases then cannot pass the
deadline. The other ways were worse: a watchdog cannot interrupt a blocking call in a Python
thread, SIGALRM works in the main thread only, and an async client under `anyio.fail_after`
would serve the requests but not the synchronous callers (the CLI, the webhook dispatcher).
DNS is the one blocking call outside those sockets (`getaddrinfo` takes no timeout): it runs on
a resolver thread of its own, waited for until the deadline.

Fetch threads. A GET runs on a small pool of its own (`MICROCRED_FETCH_CONCURRENCY` threads),
never on the caller's thread nor in the request threadpool: a caller only waits for its result.
(A webhook POST runs on the dispatcher's thread, and ends by twice its timeout.)
A request can wait on the event loop (`fill`), so a slow host never holds one of AnyIO's worker
threads (which `/health` and every sync route need) and never more than that many connections
are open to slow hosts. A fetch still queued when (nearly) all of its time is gone fails at
once ("no fetch slot"), so waiting for a slot is inside the deadline too. A failure is answered
from memory for `MICROCRED_FETCH_FAILURE_TTL` seconds, so a slow host costs one slot, not one
per request.

Requests that hold a database session must not wait on the network. A request verifies in
rounds (see `app/verify/prefetch.py`): inside a session, the fetcher answers only from what was
fetched already (`answering_from`, a `Prefetch`), notes what was missing and says so; with the
session closed, `fill` fetches what was missing; then the request verifies again.

It lives in `core` (it knows nothing of credentials) so that the app context can own one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import certifi
import httpcore
import httpx

from app.core import text as client_text
from app.core.config import Settings
from app.core.metrics import count_fetches

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Any  # socket.getaddrinfo's signature: (host, port, type=...) -> list of address infos

MAX_REDIRECTS = 3
CACHE_ENTRIES = 1024
# A fetch whose slot comes free with less than this share of its timeout left does not start:
# it could hardly finish, and would only add a connection to a host that is slow already.
START_SHARE = 0.1
# Remote documents one request may fetch (`Prefetch`).
MAX_FETCHES_PER_REQUEST = 16
_REDIRECTS = {301, 302, 303, 307, 308}
# Names that never denote a public host: RFC 6761 (example, invalid, test), RFC 6762 (local),
# RFC 7686 (onion), RFC 8375 (home.arpa), RFC 9476 (alt), and ICANN's private-use `.internal`.
_SPECIAL_USE_SUFFIXES = (
    "example",
    "invalid",
    "test",
    "local",
    "onion",
    "home.arpa",
    "alt",
    "internal",
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Key = tuple[str, str]  # (url, Accept)
Fetched = tuple[str, bytes]  # (media type, body)

# The deadline of the fetch running on this thread, read by `_DeadlineBackend` as it connects.
_DEADLINE: ContextVar[float | None] = ContextVar("microcred_fetch_deadline", default=None)


class RemoteFetchError(Exception):
    """The resource could not be fetched or read: whatever depended on it is unknown."""


class RefusedAddress(RemoteFetchError):
    """The URL or the address its host resolves to is not one this service may connect to."""


class NotFetchedYet(RemoteFetchError):
    """Asked for inside a database session before it was fetched: noted, and fetched once the
    session is closed (see `Prefetch`). Whatever depended on it is redone then."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (6to4, Teredo client, NAT64)."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why this service must not connect to `ip`, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the IPv4 address itself, written as IPv6
            return address_problem(ip.ipv4_mapped, allow_loopback=allow_loopback)
        inner = _embedded_ipv4(ip)
        if inner is not None:  # a tunnel or translator to it: both ends must be public
            problem = address_problem(inner, allow_loopback=allow_loopback)
            if problem:
                return f"{ip} leads to {inner}, and {problem}"
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    for attribute, what in (
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, attribute):
            return f"{ip} is {what}"
    if not ip.is_global:  # e.g. 100.64.0.0/10, the carrier-grade NAT shared address space
        return f"{ip} is not a public address"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class Prefetch:
    """The remote documents of one request, fetched while it holds no database session.

    Inside a session the fetcher answers from here only (`Fetcher.answering_from`): a document
    not fetched yet is noted in `wanted` and raises NotFetchedYet, which whatever asked treats
    as any fetch failure; `Fetcher.fill` then fetches what is wanted, and the request does its
    work again. Past `deadline`, past `max_fetches`, or once closed, a missing document is a
    plain RemoteFetchError: what depends on it is unknown. One request's, used by one thread at
    a time (its session's, then the event loop's).
    """

    def __init__(self, *, deadline: float, max_fetches: int = MAX_FETCHES_PER_REQUEST) -> None:
        self.deadline = deadline
        self.max_fetches = max_fetches
        self.results: dict[Key, Fetched | RemoteFetchError] = {}
        self.wanted: list[Key] = []
        self.closed = False

    def close(self) -> None:
        """Fetch nothing more: what is missing now stays missing (a request's last round)."""
        self.closed = True

    def answer(self, key: Key) -> Fetched:
        found = self.results.get(key)
        if isinstance(found, RemoteFetchError):
            raise type(found)(str(found))
        if found is not None:
            return found
        if key not in self.wanted:
            if (
                self.closed
                or time.monotonic() >= self.deadline
                or len(self.results) + len(self.wanted) >= self.max_fetches
            ):
                raise RemoteFetchError(
                    f"{key[0]} was not fetched: this request's time or number of remote fetches is used up"
                )
            self.wanted.append(key)
        raise NotFetchedYet(f"{key[0]} is not fetched yet")


# What the fetcher answers from on this thread instead of the network (`answering_from`).
_ANSWERING_FROM: ContextVar[Prefetch | None] = ContextVar("microcred_prefetch", default=None)


class Fetcher:
    """Guarded HTTPS GETs (see the module docstring); one per app, shared by threads."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        timeout: float,
        max_bytes: int,
        cache_ttl: float,
        failure_ttl: float = 0.0,
        concurrency: int = 8,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.BaseTransport | None = None,
        resolve: Resolve = socket.getaddrinfo,
    ) -> None:
        """`timeout`: seconds one whole fetch may take (every phase and redirect together);
        `failure_ttl`: seconds a failed fetch is answered from memory (0: retried every time);
        `concurrency`: fetches running at once (the fetch threads); `verify`: an SSLContext used
        as is, or True / a CA file added to the public roots (certificate checks cannot be
        turned off); `transport` replaces the network, `resolve` the DNS lookups (tests)."""
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_ttl = cache_ttl
        self.failure_ttl = failure_ttl
        self.concurrency = concurrency
        self._resolve = resolve
        self._cache: OrderedDict[Key, tuple[float, str, bytes]] = OrderedDict()
        self._failures: OrderedDict[Key, tuple[float, type[RemoteFetchError], str]] = OrderedDict()
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="microcred-fetch")
        # getaddrinfo cannot be interrupted: a lookup that outlives its deadline is left to end
        # here, on a thread of its own, and holds no fetch thread.
        self._resolvers = ThreadPoolExecutor(concurrency, thread_name_prefix="microcred-dns")
        context = _ssl_context(verify)
        self._client = httpx.Client(
            verify=context,
            transport=transport if transport is not None else _DeadlineTransport(context),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # redirects are followed by hand, each hop validated
            trust_env=False,  # no proxy from the environment: we connect to the address we checked
            # No connection reuse: pooled connections are keyed by IP, and a connection verified
            # for one hostname must never carry a request for another name on the same address.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        return cls(
            allow_loopback=settings.fetch_allow_loopback,
            timeout=settings.fetch_timeout,
            max_bytes=settings.fetch_max_bytes,
            cache_ttl=settings.fetch_cache_ttl,
            failure_ttl=settings.fetch_failure_ttl,
            concurrency=settings.fetch_concurrency,
            verify=_ssl_context(True, extra_ca=settings.fetch_ca_bundle),
        )

    def close(self) -> None:
        self._client.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._resolvers.shutdown(wait=False, cancel_futures=True)

    # --- public API -----------------------------------------------------------------------------

    def get(self, url: str, *, accept: str) -> Fetched:
        """GET `url` safely: (media type, body) of a 200 response, or RemoteFetchError.

        Waits (on the caller's thread) for a fetch thread; inside `answering_from`, answers from
        memory only."""
        key = (url, accept)
        cached = self._cached(key)
        if cached is not None:
            return cached
        prefetch = _ANSWERING_FROM.get()
        if prefetch is not None:
            return prefetch.answer(key)
        # No timeout needed: the fetch ends by its deadline, or fails at once if it starts after.
        return self._threads.submit(self._fetch_by, key, time.monotonic() + self.timeout).result()

    def get_json(self, url: str) -> Any:
        """GET `url` and parse the body as JSON (whatever media type the server claims)."""
        _, body = self.get(
            url,
            accept="application/did+json, application/json, application/jwk-set+json, "
            "application/ld+json;q=0.9, */*;q=0.1",
        )
        try:
            return client_text.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RemoteFetchError(f"{url} did not return JSON") from exc

    @contextmanager
    def answering_from(self, prefetch: Prefetch) -> Iterator[None]:
        """Within: `get` on this thread never touches the network (see `Prefetch`)."""
        token = _ANSWERING_FROM.set(prefetch)
        try:
            yield
        finally:
            _ANSWERING_FROM.reset(token)

    async def fill(self, prefetch: Prefetch) -> None:
        """Fetch what `prefetch` wants, side by side on the fetch threads, waiting on the event
        loop (no worker thread of the app's is held). Each fetch, its wait for a fetch thread
        included, ends by the fetch deadline or the prefetch's, whichever comes first."""
        wanted, prefetch.wanted = prefetch.wanted, []
        deadline = min(time.monotonic() + self.timeout, prefetch.deadline)
        outcomes = await asyncio.gather(
            *(
                asyncio.wrap_future(self._threads.submit(self._fetch_by, k, deadline))
                for k in wanted
            ),
            return_exceptions=True,
        )
        for key, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, RemoteFetchError):
                prefetch.results[key] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                prefetch.results[key] = outcome

    def check_url(self, url: str) -> None:
        """Refuse (RefusedAddress) a URL this service must not connect to, as `get` and `post` do.

        Resolves the host: RemoteFetchError when it cannot be resolved.
        """
        self._addresses(self._checked_url(url), time.monotonic() + self.timeout)

    def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> int:
        """POST `content` to `url` through the same guard as `get`; the answer's status code.

        Redirects are not followed (a 3xx is the answer) and the response body is not read.
        Nothing is cached. `timeout` (seconds to connect, and to wait for each part of the
        answer) defaults to the fetcher's; the whole exchange ends by twice that, however slowly
        the receiver answers. RefusedAddress / RemoteFetchError when the request could not be
        made.
        """
        per_operation = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + 2 * per_operation
        target = self._checked_url(url)
        addresses = self._addresses(target, deadline)
        response = self._open(
            target,
            addresses,
            method="POST",
            headers={"User-Agent": "microcred-webhooks", **headers},
            content=content,
            deadline=deadline,
            timeout=per_operation,
        )
        response.close()
        return response.status_code

    # --- internals ------------------------------------------------------------------------------

    def _cached(self, key: Key) -> Fetched | None:
        """A fresh cached response, None, or the remembered failure raised again."""
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                if now < entry[0]:
                    return entry[1], entry[2]
                del self._cache[key]
            failure = self._failures.get(key)
            if failure is None:
                return None
            if now >= failure[0]:
                del self._failures[key]
                return None
        _expires, kind, message = failure
        raise kind(f"{message} (a failure of the last {self.failure_ttl:g} s, not retried yet)")

    def _remember(self, entries: OrderedDict[Key, Any], key: Key, value: Any) -> None:
        with self._lock:
            entries[key] = value
            entries.move_to_end(key)
            while len(entries) > CACHE_ENTRIES:
                entries.popitem(last=False)

    def _fetch_by(self, key: Key, deadline: float) -> Fetched:
        """One fetch on a fetch thread, by `deadline`; cached, failures remembered briefly."""
        url, accept = key
        left = deadline - time.monotonic()
        if left < START_SHARE * self.timeout:
            raise RemoteFetchError(
                f"{url} was not fetched: all {self.concurrency} fetch slots stayed busy until its deadline"
            )
        cached = self._cached(key)  # fetched by another request while this one waited
        if cached is not None:
            return cached
        try:
            media_type, body = self._fetch(url, accept, deadline)
        except RemoteFetchError as exc:
            # Remembered when the host had (nearly) the whole timeout, or failed well before the
            # deadline: a fetch cut short by a slot wait or a request's budget says little.
            ended_early = time.monotonic() < deadline - START_SHARE * self.timeout
            if self.failure_ttl > 0 and (left >= 0.9 * self.timeout or ended_early):
                self._remember(
                    self._failures, key, (time.monotonic() + self.failure_ttl, type(exc), str(exc))
                )
            raise
        if self.cache_ttl > 0:
            self._remember(self._cache, key, (time.monotonic() + self.cache_ttl, media_type, body))
        return media_type, body

    @count_fetches  # one count per network fetch, by outcome (cache hits never get here)
    def _fetch(self, url: str, accept: str, deadline: float) -> Fetched:
        target = self._checked_url(url)
        origin = (target.host, target.port)
        for _ in range(MAX_REDIRECTS + 1):
            addresses = self._addresses(target, deadline)
            response = self._open(
                target,
                addresses,
                headers={
                    "Accept": accept,
                    # Compressed bodies are refused: the size cap must bound what we hold.
                    "Accept-Encoding": "identity",
                    "User-Agent": "microcred-verifier",
                },
                deadline=deadline,
            )
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    try:
                        following = target.join(response.headers["location"])
                    except httpx.InvalidURL as exc:
                        raise RemoteFetchError(f"{url} redirects to an invalid URL") from exc
                    target = self._checked_url(str(following))
                    if (target.host, target.port) != origin:
                        raise RefusedAddress(
                            f"{url} redirects to another host ({target.host}); only same-origin redirects are followed"
                        )
                    continue
                if response.status_code != 200:
                    raise RemoteFetchError(f"{url} answered HTTP {response.status_code}")
                return self._read(url, response, deadline)
            finally:
                response.close()
        raise RemoteFetchError(f"{url} redirects more than {MAX_REDIRECTS} times")

    def _checked_url(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise RefusedAddress(f"not a valid URL: {url!r}") from exc
        if parsed.scheme != "https":
            raise RefusedAddress(f"only https URLs are fetched, not {url!r}")
        if parsed.userinfo:
            raise RefusedAddress("URLs with credentials (user:password@) are refused")
        host = parsed.host
        if not host:
            raise RefusedAddress(f"the URL names no host: {url!r}")
        ip = _literal_ip(host)
        if ip is not None:
            # A literal address is judged at once: a redirect to one is refused as what it is.
            problem = address_problem(ip, allow_loopback=self.allow_loopback)
            if problem:
                raise RefusedAddress(f"refused {host}: {problem}")
            return parsed
        name = parsed.raw_host.decode("ascii").rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            # RFC 6761: loopback by definition, whatever a resolver would answer.
            if not self.allow_loopback:
                raise RefusedAddress(f"refused {host}: localhost names are loopback")
        else:
            if "." not in name:
                raise RefusedAddress(f"refused {host}: a single-label name is not a public host")
            if any(name == s or name.endswith("." + s) for s in _SPECIAL_USE_SUFFIXES):
                raise RefusedAddress(f"refused {host}: a special-use domain is not a public host")
        return parsed

    def _addresses(self, url: httpx.URL, deadline: float) -> list[IPAddress]:
        """Every address the host resolves to, all validated; refuses if any one is not public."""
        literal = _literal_ip(url.host)
        if literal is not None:
            return [literal]
        name = url.raw_host.decode("ascii")
        lookup = self._resolvers.submit(
            self._resolve, name, url.port or 443, type=socket.SOCK_STREAM
        )
        try:
            infos = lookup.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout as exc:
            lookup.cancel()
            raise RemoteFetchError(f"cannot resolve {url.host}: no answer in time") from exc
        except (OSError, UnicodeError) as exc:
            raise RemoteFetchError(f"cannot resolve {url.host}: {exc}") from exc
        addresses: list[IPAddress] = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            problem = address_problem(ip, allow_loopback=self.allow_loopback)
            if problem:
                raise RefusedAddress(f"refused {url.host}: it resolves to {problem}")
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise RemoteFetchError(f"cannot resolve {url.host}: no address")
        return addresses

    def _open(
        self,
        url: httpx.URL,
        addresses: list[IPAddress],
        *,
        headers: Mapping[str, str],
        deadline: float,
        method: str = "GET",
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send the request to the first validated address that accepts a connection, by
        `deadline` (the connection's sockets keep to it: see `_DeadlineBackend`); `timeout`,
        when given, bounds each socket operation too."""
        error: Exception | None = None
        for ip in addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemoteFetchError(f"{url} timed out")
            request = self._client.build_request(
                method,
                url.copy_with(host=str(ip)),
                headers={**headers, "Host": url.netloc.decode("ascii")},
                content=content,
                timeout=httpx.Timeout(left if timeout is None else min(timeout, left)),
                # TLS still verifies the certificate against the hostname (and sends it as SNI).
                extensions={"sni_hostname": url.host},
            )
            token = _DEADLINE.set(deadline)
            try:
                return self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                error = exc
            except httpx.TimeoutException as exc:
                raise RemoteFetchError(f"{url} timed out") from exc
            except httpx.HTTPError as exc:
                raise RemoteFetchError(f"{url} could not be fetched: {exc}") from exc
            finally:
                _DEADLINE.reset(token)
        raise RemoteFetchError(f"cannot connect to {url.host}: {error}")

    def _read(self, url: str, response: httpx.Response, deadline: float) -> tuple[str, bytes]:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in {"", "identity"}:
            raise RemoteFetchError(f"{url} sent a {encoding}-encoded body, which is not read")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise RemoteFetchError(f"{url} is larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.max_bytes:
                    raise RemoteFetchError(f"{url} is larger than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise RemoteFetchError(f"{url} took too long to send")
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise RemoteFetchError(f"{url} timed out") from exc
        except httpx.HTTPError as exc:
            raise RemoteFetchError(f"{url} could not be read: {exc}") from exc
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return media_type, b"".join(chunks)


# --- sockets that keep to the fetch's deadline -----------------------------------------------------


def _time_left(
    timeout: float | None, deadline: float | None, error: type[Exception]
) -> float | None:
    """The timeout one socket operation gets: its own, cut to what is left of the deadline."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float | None) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(
            max_bytes, _time_left(timeout, self._deadline, httpcore.ReadTimeout)
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            left = _time_left(timeout, self._deadline, httpcore.ConnectTimeout)
        except httpcore.ConnectTimeout:
            self._inner.close()  # as the inner stream does when its own handshake fails
            raise
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, its connections bound to the deadline of the fetch that opens
    them (`_DEADLINE`; there is no connection reuse, so a connection serves one fetch)."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _DEADLINE.get()
        left = _time_left(timeout, deadline, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream, deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - fetches never use unix sockets
        raise httpcore.ConnectError("unix sockets are not fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport, on `_DeadlineBackend`'s connections, with no keep-alive."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend, so its pool is built again with ours: the same
        # httpcore pool httpx would make, with no connection kept for reuse (see Fetcher).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_keepalive_connections=0,
            network_backend=_DeadlineBackend(),
        )


def _ssl_context(
    verify: ssl.SSLContext | str | bool, *, extra_ca: Path | None = None
) -> ssl.SSLContext:
    """The TLS context: the public roots (certifi), plus an extra CA file when given."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        raise ValueError("certificate verification cannot be turned off for remote fetches")
    cafiles = tuple(
        str(cafile) for cafile in (verify if isinstance(verify, str) else None, extra_ca) if cafile
    )
    # Each file's modification time is part of the key: a replaced CA file is read again.
    return _cached_context(cafiles, tuple(Path(cafile).stat().st_mtime_ns for cafile in cafiles))


@lru_cache(maxsize=16)
def _cached_context(cafiles: tuple[str, ...], _mtimes: tuple[int, ...]) -> ssl.SSLContext:
    """Parsing certifi's ~150 roots takes ~40 ms: once per process and CA files, not per app
    (the test suite builds an app per test). A context is safe to share between clients."""
    context = ssl.create_default_context(cafile=certifi.where())
    for cafile in cafiles:
        context.load_verify_locations(cafile=cafile)
    return context
