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
- has connect/read timeouts and an overall deadline, and stops reading past a size cap;
- caches successful responses for a while (thread-safe, bounded).

It lives in `core` (it knows nothing of credentials) so that the app context can own one.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import certifi
import httpx

from app.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
CACHE_ENTRIES = 1024
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


class RemoteFetchError(Exception):
    """The resource could not be fetched or read: whatever depended on it is unknown."""


class RefusedAddress(RemoteFetchError):
    """The URL or the address its host resolves to is not one this service may connect to."""


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


class Fetcher:
    """Guarded HTTPS GETs (see the module docstring); one per app, shared by threads."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        timeout: float,
        max_bytes: int,
        cache_ttl: float,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`verify`: an SSLContext used as is, or True / a CA file added to the public roots
        (certificate checks cannot be turned off); `transport` replaces the network (tests)."""
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_ttl = cache_ttl
        self._cache: OrderedDict[tuple[str, str], tuple[float, str, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._client = httpx.Client(
            verify=_ssl_context(verify),
            transport=transport,
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
            verify=_ssl_context(True, extra_ca=settings.fetch_ca_bundle),
        )

    def close(self) -> None:
        self._client.close()

    # --- public API -----------------------------------------------------------------------------

    def get(self, url: str, *, accept: str) -> tuple[str, bytes]:
        """GET `url` safely: (media type, body) of a 200 response, or RemoteFetchError."""
        key = (url, accept)
        cached = self._cached(key)
        if cached is not None:
            return cached
        media_type, body = self._fetch(url, accept)
        if self.cache_ttl > 0:
            with self._lock:
                self._cache[key] = (time.monotonic() + self.cache_ttl, media_type, body)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return media_type, body

    def get_json(self, url: str) -> Any:
        """GET `url` and parse the body as JSON (whatever media type the server claims)."""
        _, body = self.get(
            url,
            accept="application/did+json, application/json, application/jwk-set+json, "
            "application/ld+json;q=0.9, */*;q=0.1",
        )
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RemoteFetchError(f"{url} did not return JSON") from exc

    def check_url(self, url: str) -> None:
        """Refuse (RefusedAddress) a URL this service must not connect to, as `get` and `post` do.

        Resolves the host: RemoteFetchError when it cannot be resolved.
        """
        self._addresses(self._checked_url(url))

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
        Nothing is cached. `timeout` (seconds to connect and to wait for the answer) defaults to
        the fetcher's. RefusedAddress / RemoteFetchError when the request could not be made.
        """
        target = self._checked_url(url)
        addresses = self._addresses(target)
        response = self._open(
            target,
            addresses,
            method="POST",
            headers={"User-Agent": "microcred-webhooks", **headers},
            content=content,
            timeout=timeout,
        )
        response.close()
        return response.status_code

    # --- internals ------------------------------------------------------------------------------

    def _cached(self, key: tuple[str, str]) -> tuple[str, bytes] | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires, media_type, body = entry
            if time.monotonic() >= expires:
                del self._cache[key]
                return None
            return media_type, body

    def _fetch(self, url: str, accept: str) -> tuple[str, bytes]:
        deadline = time.monotonic() + 2 * self.timeout
        target = self._checked_url(url)
        origin = (target.host, target.port)
        for _ in range(MAX_REDIRECTS + 1):
            addresses = self._addresses(target)
            response = self._open(
                target,
                addresses,
                headers={
                    "Accept": accept,
                    # Compressed bodies are refused: the size cap must bound what we hold.
                    "Accept-Encoding": "identity",
                    "User-Agent": "microcred-verifier",
                },
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

    def _addresses(self, url: httpx.URL) -> list[IPAddress]:
        """Every address the host resolves to, all validated; refuses if any one is not public."""
        literal = _literal_ip(url.host)
        if literal is not None:
            return [literal]
        name = url.raw_host.decode("ascii")
        try:
            infos = socket.getaddrinfo(name, url.port or 443, type=socket.SOCK_STREAM)
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
        method: str = "GET",
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send the request to the first validated address that accepts a connection."""
        error: Exception | None = None
        for ip in addresses:
            request = self._client.build_request(
                method,
                url.copy_with(host=str(ip)),
                headers={**headers, "Host": url.netloc.decode("ascii")},
                content=content,
                timeout=httpx.Timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                # TLS still verifies the certificate against the hostname (and sends it as SNI).
                extensions={"sni_hostname": url.host},
            )
            try:
                return self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                error = exc
            except httpx.TimeoutException as exc:
                raise RemoteFetchError(f"{url} timed out") from exc
            except httpx.HTTPError as exc:
                raise RemoteFetchError(f"{url} could not be fetched: {exc}") from exc
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
