"""JSON-LD expansion over the contexts shipped with the package, and the undefined-term check.

Contexts. The ones in `SHIPPED_CONTEXTS` are served from `app/standards/`; any other https
context only through the fetch callable a `ContextLoader` is given (the app passes its guarded
`Fetcher.get_json`), at most `max_remote` per document, and not at all when it is given none
(`MICROCRED_REMOTE_CONTEXTS` off). A context that cannot be had raises `ContextUnavailable`:
whatever depends on it is unknown, not wrong.

Undefined terms. The W3C VC v2 context carries `"@vocab": ".../issuer-dependent#"`, which gives
every property and type it does not define an IRI anyway, so a successful expansion proves
nothing. The 1EdTech validator expands with its own copy of VC v2 that lacks that `@vocab`, plus
`expandContext: {"@vocab": "urn:UNDEFINEDTERM"}`, and rejects a credential in which any IRI
lands in that namespace. `term_problems` does the same, and also flags IRIs in the
issuer-dependent vocabulary (a document can bring that `@vocab` itself), for properties, for
`@type` values and for values the contexts read as vocabulary terms. The VC v2 context shipped
here is the validator's copy, the only one in the standards material: it differs from the W3C
document only by that `@vocab` line.

pyld has no "safe mode" like jsonld.js `safe: true` (which makes any dropped property, relative
reference or other lossy expansion an error). It calls a handler for each property it drops,
which `term_problems` reports; the `@vocab` technique catches everything else an undefined term
could hide behind.

Caching. pyld keeps resolved contexts, and each context processed against each active context,
in a process-wide cache keyed by URL alone: shared by every loader and not safe for threads.
A `ContextLoader` hands pyld a context resolver over a bounded, locked cache of its own instead,
and marks its documents `static` so that pyld keeps URL contexts there: they are read, parsed
and processed once. Type-scoped contexts (OB 3.0 has one per class) are still processed at each
expansion: pyld keys processed contexts by the identity of the active context, and the ones it
derives for nested nodes are new each time. That is most of a warm expansion's cost, which is
why callers remember outcomes by content.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from c14n.Canonicalize import canonicalize  # type: ignore[import-untyped]  # pyld's JCS
from pyld import jsonld  # type: ignore[import-untyped]  # pyld ships no type information
from pyld.context_resolver import ContextResolver  # type: ignore[import-untyped]
from pyld.resolved_context import (  # type: ignore[import-untyped]
    MAX_ACTIVE_CONTEXTS,
    ResolvedContext,
)

from app.core import standards
from app.core.config import Settings

Fetch = Callable[[str], Any]
"""GET a URL and return the parsed JSON document; raises on any failure."""

UNDEFINED_TERM = "urn:UNDEFINEDTERM"
ISSUER_DEPENDENT = "https://www.w3.org/ns/credentials/issuer-dependent#"
UNDEFINED_VOCAB = {"@vocab": UNDEFINED_TERM}
# Values nested deeper than this are not expanded (pyld recurses several frames per level; no
# credential comes close).
MAX_DEPTH = 64

# URL -> file in app/standards/. The VC v2, OB 3.0 and extensions URLs map as the 1EdTech
# validator's CachingDocumentLoader maps them (OB `context.json` and its old alias
# `context/ob_v3p0.jsonld` to one document), except that OB 3.0.3 is the document the spec
# publishes, not the validator's copy (which adds `endorsementJwt` and `jti`).
SHIPPED_CONTEXTS: dict[str, str] = {
    "https://www.w3.org/ns/credentials/v2": "credentials-v2.jsonld",
    "https://www.w3.org/2018/credentials/v1": "credentials-v1.jsonld",
    "https://www.w3.org/ns/credentials/examples/v2": "credentials-examples-v2.jsonld",
    "https://www.w3.org/ns/credentials/status/v1": "status-v1.jsonld",
    "https://w3id.org/vc/status-list/2021/v1": "status-list-2021-v1.jsonld",
    "https://purl.imsglobal.org/spec/ob/v3p0/context.json": "ob-context.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context/ob_v3p0.jsonld": "ob-context.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json": "ob-context-3.0.1.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": "ob-context-3.0.2.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob-context-3.0.3.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json": "ob-extensions.json",
    "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json": "clr-context-2.0.1.json",
    "https://w3id.org/security/data-integrity/v1": "data-integrity-v1.jsonld",
    "https://w3id.org/security/v2": "security-v2.jsonld",
    "https://w3id.org/security/v3": "security-v3-unstable.jsonld",
    "https://w3id.org/security/suites/ed25519-2020/v1": "suites-ed25519-2020.jsonld",
    "https://w3id.org/security/suites/jws-2020/v1": "suites-jws-2020.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
}


class ContextUnavailable(Exception):
    """A context the document names could not be obtained: what depends on it is unknown."""


class InvalidJsonLd(Exception):
    """The document is not valid JSON-LD (a JSON-LD error, or input the processor cannot take)."""


@dataclass(frozen=True)
class TermProblem:
    """Something in a document its contexts do not define, or a JSON-LD error (path "/")."""

    path: str  # where, in the expanded document, named by the terms' local names
    message: str
    invalid: bool = False  # not an undefined term: the document is not valid JSON-LD

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _LockedLRU(MutableMapping[str, Any]):
    """A bounded least-recently-used map that threads may share."""

    def __init__(self, maxsize: int) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key]

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            value = self._data[key]
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class _Resolver(ContextResolver):  # type: ignore[misc]  # pyld's class is untyped
    """pyld's resolver, with each resolved context's cache of processed contexts made safe for
    threads (pyld gives it a plain LRU) before any other thread can see it, and embedded
    contexts keyed without serialising them again.

    pyld keys an embedded context (a type-scoped one: OB 3.0 has one per class) by its JCS
    serialisation, computed at every typed node of every document: most of a warm
    canonicalisation. Those contexts are the very objects of the cached context documents, so
    their keys are remembered by identity (`_EmbeddedKeys` holds the object, so that its id is
    not reused while remembered); other embedded contexts are keyed as pyld keys them."""

    def resolve(self, active_ctx: Any, context: Any, base: Any, cycles: Any = None) -> Any:
        if isinstance(context, dict) and "@context" in context:
            context = context["@context"]
        items = context if isinstance(context, list) else [context]
        if not any(isinstance(item, dict) for item in items):
            return super().resolve(active_ctx, context, base, cycles)
        resolved: list[Any] = []
        for item in items:
            if not isinstance(item, dict):
                resolved.extend(super().resolve(active_ctx, [item], base, cycles))
                continue
            key = _EMBEDDED_KEYS.key(item)
            found = self._get(key)
            if not found:
                found = ResolvedContext(item)
                self._cache_resolved_context(key, found, "static")
            resolved.append(found)
        return resolved

    def _cache_resolved_context(self, key: str, resolved: Any, tag: str | None) -> Any:
        for item in resolved if isinstance(resolved, list) else [resolved]:
            if not isinstance(item.cache, _LockedLRU):
                item.cache = _LockedLRU(MAX_ACTIVE_CONTEXTS)
        return super()._cache_resolved_context(key, resolved, tag)


class _EmbeddedKeys:
    """The JCS keys of the embedded contexts of the context documents a loader serves,
    remembered by object identity (bounded, thread-safe).

    Only contexts found in a served context document are remembered: those objects belong to
    the resolver's cache and nothing changes them. An embedded context of the document being
    processed (which its caller may change between two calls) is serialised each time."""

    def __init__(self, maxsize: int = 8192) -> None:
        self._keys: OrderedDict[int, tuple[dict[str, Any], str | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def register(self, document: Any) -> None:
        """Remember the embedded contexts of a context document about to be served."""
        found: list[dict[str, Any]] = []
        stack = [document]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                inner = item.get("@context")
                if isinstance(inner, dict) and item is not document:
                    found.append(inner)
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        with self._lock:
            for context in found:
                self._keys[id(context)] = (context, None)
            while len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)

    def key(self, context: dict[str, Any]) -> str:
        with self._lock:
            found = self._keys.get(id(context))
        known = found is not None and found[0] is context
        if known and found is not None and found[1] is not None:
            return found[1]
        key: str = canonicalize(dict(context)).decode("utf-8")
        if known:
            with self._lock:
                self._keys[id(context)] = (context, key)
        return key


_EMBEDDED_KEYS = _EmbeddedKeys()


class ContextLoader:
    """Serves JSON-LD contexts: shipped ones from the package, others through `fetch` (cached).

    Thread-safe; meant to live as long as the app, so that its caches stay warm."""

    _serial = itertools.count()

    def __init__(
        self,
        *,
        fetch: Fetch | None = None,
        max_remote: int = 8,
        cache_size: int = 256,
        remote_cache_size: int = 128,
    ) -> None:
        """`fetch` None: only shipped contexts. `max_remote`: fetches allowed per expansion."""
        self.fetch = fetch
        self.max_remote = max_remote
        # Tells loaders apart in caches of results (which depend on what a loader serves).
        self.serial = next(ContextLoader._serial)
        self._resolved = _LockedLRU(cache_size)
        self._remote = _LockedLRU(remote_cache_size)

    @classmethod
    def from_settings(cls, settings: Settings, *, fetch: Fetch | None) -> ContextLoader:
        """The loader the settings ask for: `fetch` is used only if remote contexts are on."""
        return cls(fetch=fetch if settings.remote_contexts else None)

    def document(self, url: str) -> Any:
        """The context document at `url` (a fresh copy): shipped, or fetched once and kept.

        ContextUnavailable if it is not shipped and cannot be fetched."""
        name = SHIPPED_CONTEXTS.get(url)
        if name is not None:
            return copy.deepcopy(standards.load(name))
        cached = self._remote.get(url)
        if cached is None:
            cached = self._fetch(url)
            self._remote[url] = cached
        return copy.deepcopy(cached)

    def _fetch(self, url: str) -> Any:
        if not url.startswith("https://"):
            raise ContextUnavailable(
                f"the context {_quote(url)} is not one this service ships, and only https contexts are fetched"
            )
        if self.fetch is None:
            raise ContextUnavailable(
                f"the context {_quote(url)} is not one this service ships, and fetching contexts is turned off"
            )
        try:
            return self.fetch(url)
        # The callable is the caller's: whatever it raises, the context is unavailable.
        except Exception as exc:
            raise ContextUnavailable(
                f"the context {_quote(url)} could not be fetched: {_safe(str(exc))}"
            ) from exc

    def expand(
        self,
        document: dict[str, Any],
        *,
        expand_context: dict[str, Any] | None = None,
        on_dropped: Callable[[str | None], None] | None = None,
    ) -> list[Any]:
        """The JSON-LD expansion of `document` with these contexts (pyld, JSON-LD 1.1).

        `on_dropped` is called with the expanded IRI (or None) of each property pyld drops.
        InvalidJsonLd if it is not valid JSON-LD; ContextUnavailable if a context is missing."""
        expanded: list[Any] = self._process(
            document,
            lambda options: jsonld.expand(
                document, options, on_property_dropped=on_dropped or _ignore
            ),
            expand_context=expand_context,
        )
        return expanded

    def canonize(self, document: dict[str, Any]) -> str:
        """The RDFC-1.0 (URDNA2015) canonical N-Quads of `document`, for Data Integrity proofs.

        Strict, like jsonld.js `safe: true` in the Digital Bazaar suites: a property the contexts
        do not define would be dropped, so it would not be signed or checked, and this raises
        InvalidJsonLd instead. ContextUnavailable if a context is missing."""
        dropped: list[str | None] = []

        def run(options: dict[str, Any]) -> Any:
            options = {**options, "algorithm": "URDNA2015", "format": "application/n-quads"}
            return jsonld.JsonLdProcessor(on_property_dropped=dropped.append).normalize(
                document, options
            )

        nquads = self._process(document, run)
        if dropped:
            what = ", ".join(sorted({_quote(d) if d else "a keyword-like key" for d in dropped}))
            raise InvalidJsonLd(
                f"properties the contexts do not define would be left out of the signature: {what}"
            )
        if not isinstance(nquads, str):  # pragma: no cover - pyld returns a string for a format
            raise InvalidJsonLd("the document has no N-Quads form")
        return nquads

    def _process(
        self,
        document: Any,
        run: Callable[[dict[str, Any]], Any],
        *,
        expand_context: dict[str, Any] | None = None,
    ) -> Any:
        """Run one pyld operation over `document` with these contexts, its errors sorted out."""
        if not isinstance(document, dict):
            raise InvalidJsonLd("a JSON-LD document here must be a JSON object")
        if nesting_exceeds(document, MAX_DEPTH):
            raise InvalidJsonLd(f"values are nested more than {MAX_DEPTH} levels deep")
        unavailable: list[ContextUnavailable] = []
        remote_left = [self.max_remote]

        def load(url: Any, options: Any = None) -> dict[str, Any]:
            try:
                if not isinstance(url, str):
                    raise ContextUnavailable(f"{_quote(url)} is not a context URL")
                if url not in SHIPPED_CONTEXTS and url not in self._remote:
                    if remote_left[0] <= 0:
                        raise ContextUnavailable(
                            f"the document names more than {self.max_remote} contexts this service does not ship"
                        )
                    remote_left[0] -= 1
                document = self.document(url)
                _EMBEDDED_KEYS.register(document)
                return {
                    "contextUrl": None,
                    "documentUrl": url,
                    "document": document,
                    "contentType": "application/ld+json",
                    "tag": "static",  # kept by the resolver, in this loader's cache
                }
            except ContextUnavailable as exc:
                unavailable.append(exc)  # pyld wraps what a loader raises; keep the original
                raise

        options: dict[str, Any] = {
            "documentLoader": load,
            # An internal option of pyld: its own resolver would use the process-wide cache.
            "contextResolver": _Resolver(self._resolved, load),
        }
        if expand_context is not None:
            options["expandContext"] = expand_context
        try:
            return run(options)
        except ContextUnavailable:
            raise
        except jsonld.JsonLdError as exc:
            if unavailable:
                raise unavailable[0] from None
            raise InvalidJsonLd(_describe(exc)) from exc
        except RecursionError as exc:
            raise InvalidJsonLd("the document is nested too deeply to be processed") from exc
        # pyld also fails on hostile input in ways it does not name (TypeError, KeyError, ...).
        except Exception as exc:
            if unavailable:
                raise unavailable[0] from None
            raise InvalidJsonLd(
                f"the document cannot be processed as JSON-LD ({type(exc).__name__})"
            ) from exc


def term_problems(document: Any, *, loader: ContextLoader) -> list[TermProblem]:
    """Every property, type and vocabulary value of `document` that its contexts do not define,
    and any JSON-LD error that stops its expansion; empty when every term is defined.

    Checked the way the 1EdTech validator checks (see the module docstring). A problem's path is
    the place in the expanded document, each step named by the term's local name
    (`/credentialSubject/achievement/foo`), with an index where a property holds several values.
    ContextUnavailable if a context the document names cannot be had: nothing is known then."""
    if not isinstance(document, dict):
        return [TermProblem("/", "the document is not a JSON object", invalid=True)]
    dropped: list[TermProblem] = []

    def on_dropped(expanded: str | None) -> None:
        what = (
            "a key that is neither a term nor an IRI (keyword-like, or a term mapped to null)"
            if expanded is None
            else f"the property {_quote(expanded)}"
        )
        dropped.append(
            TermProblem("/", f"{what} does not expand to an absolute IRI: it is dropped")
        )

    try:
        expanded = loader.expand(document, expand_context=UNDEFINED_VOCAB, on_dropped=on_dropped)
    except InvalidJsonLd as exc:
        return [TermProblem("/", f"not valid JSON-LD: {exc}", invalid=True)]
    return list(dict.fromkeys([*_undefined_in(expanded), *dropped]))


def undefined_terms(document: Any, *, loader: ContextLoader) -> list[str]:
    """`term_problems` as readable lines: `"<path>: <what is undefined or wrong>"`."""
    return [str(problem) for problem in term_problems(document, loader=loader)]


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels deep (without recursing)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _undefined_in(expanded: list[Any]) -> list[TermProblem]:
    found: list[TermProblem] = []
    stack: list[tuple[Any, str]] = [(expanded, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, list):
            many = len(value) > 1
            stack.extend(
                (value[i], f"{path}/{i}" if many else path) for i in reversed(range(len(value)))
            )
            continue
        if not isinstance(value, dict):
            continue
        types = value.get("@type")
        for kind in types if isinstance(types, list) else [types]:
            term = _undefined(kind)
            if term is not None:
                found.append(
                    TermProblem(
                        f"{path}/type", f"the type {_quote(term)} is not defined by the contexts"
                    )
                )
        term = _undefined(value.get("@id"))
        if term is not None:
            found.append(
                TermProblem(path or "/", f"the value {_quote(term)} is not defined by the contexts")
            )
        if types == "@json":
            continue  # a JSON literal: its members are data, not terms
        children: list[tuple[Any, str]] = []
        for key, child in value.items():
            if key in _LEAF_KEYWORDS:
                continue
            if key in _TRANSPARENT_KEYWORDS:
                children.append((child, path))
                continue
            if key.startswith("@"):
                children.append((child, f"{path}/{key}"))
                continue
            term = _undefined(key)
            if term is not None:
                found.append(
                    TermProblem(
                        f"{path}/{_safe(term)}",
                        f"the property {_quote(term)} is not defined by the contexts",
                    )
                )
            children.append(
                (child, f"{path}/{_safe(term if term is not None else _local_name(key))}")
            )
        stack.extend(reversed(children))
    return found


_LEAF_KEYWORDS = frozenset({"@type", "@id", "@value", "@language", "@direction", "@index"})
_TRANSPARENT_KEYWORDS = frozenset({"@graph", "@list", "@set"})


def _undefined(iri: Any) -> str | None:
    """The term an IRI was minted from by a fallback vocabulary, or None."""
    if isinstance(iri, str):
        for prefix in (UNDEFINED_TERM, ISSUER_DEPENDENT):
            if iri.startswith(prefix):
                return iri[len(prefix) :]
    return None


def _local_name(iri: str) -> str:
    for separator in ("#", "/", ":"):
        _, found, tail = iri.rpartition(separator)
        if found and tail:
            return tail
    return iri


def _safe(text: str) -> str:
    """`text` with lone surrogates escaped, so that it can be encoded as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:120] + ("…" if len(text) > 120 else ""))


def _describe(exc: Any) -> str:
    """A pyld error as `code: message`, with the error that caused it."""
    parts: list[str] = []
    while isinstance(exc, jsonld.JsonLdError) and len(parts) < 3:
        message = str(exc.args[0]) if exc.args else ""
        parts.append(f"{exc.code}: {message}" if exc.code else message)
        exc = exc.__cause__
    return _safe(" (".join(parts) + ")" * (len(parts) - 1))[:400]


def _ignore(_: str | None) -> None:
    return None
