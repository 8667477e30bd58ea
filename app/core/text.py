"""Text a client may send: what the service refuses at the edge, and JSON read with a depth limit.

Two kinds of string cannot be stored or shown faithfully, so they are refused wherever text
enters (the path, the query, cookies, form and JSON bodies, credentials being verified):
- U+0000 (NUL): PostgreSQL's text type cannot hold it (psycopg refuses to send it), and C
  libraries and logs cut strings at it;
- lone surrogates (U+D800 to U+DFFF not in a pair): JSON's `\\ud800` escape makes one, but it is
  not Unicode text, so it cannot be encoded as UTF-8 (for the database, a page, a response).
  I-JSON (RFC 7493 §2.1) forbids them for the same reason.

JSON nested deeper than MAX_JSON_DEPTH is refused too: Python's parser and every recursive walk
after it (validation, JSON-LD, templates) would run out of stack long before a real credential
gets there (ours nest about 6 levels).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

MAX_JSON_DEPTH = 64

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
# In raw JSON bytes, a NUL or a lone surrogate can only come from an escape (\u0000, \udXXX), a
# raw NUL byte (UTF-16/32 bodies, which json.loads accepts) or a UTF-8-encoded surrogate (which
# json.loads decodes with "surrogatepass"). Bodies without any of these need no parse to clear.
_MAYBE_BAD_JSON = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\x00|\xed[\xa0-\xbf]")
# Bodies up to this size get the exact depth count (well under a millisecond).
EXACT_UP_TO = 256 * 1024
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def text_fault(value: str) -> str | None:
    """Why `value` cannot be accepted as text, or None if it can."""
    found = _BAD_CHAR.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return "contains a lone surrogate (not Unicode text)"


@dataclass(frozen=True)
class TextFault:
    """Where in a parsed JSON value the first unacceptable text or nesting was found."""

    loc: tuple[str, ...]
    reason: str

    @property
    def where(self) -> str:
        return ".".join(self.loc) or "the document"

    def __str__(self) -> str:
        return f"{self.where} {self.reason}"


def printable(value: str) -> str:
    """`value` with NUL and lone surrogates written as \\u escapes (to name where they are)."""
    return _BAD_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield printable(str(key)), (key, item)
    else:
        for n, item in enumerate(value):
            yield str(n), (None, item)


def find_fault(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> TextFault | None:
    """The first unacceptable string (key or value) or over-deep nesting in a parsed JSON value.

    Iterative, so that it can walk what a recursive function could not.
    """
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        loc, node = stack.pop()
        if isinstance(node, str):
            reason = text_fault(node)
            if reason:
                return TextFault(loc, reason)
            continue
        if not isinstance(node, dict | list):
            continue
        if len(loc) >= max_depth:
            return TextFault(loc, f"is nested deeper than {max_depth} levels")
        for name, (key, item) in _children(node):
            if isinstance(key, str):
                reason = text_fault(key)
                if reason:
                    return TextFault((*loc, name), f"(a member name) {reason}")
            stack.append(((*loc, name), item))
    return None


def _deepest(brackets: bytes) -> int:
    # Each opener +1, each closer -1 (as signed bytes), summed up in C by accumulate.
    steps = brackets.translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def _outside_strings(body: bytes) -> bytes:
    """The JSON text without its strings (escapes first: `\\\\` pairs, then `\\"`)."""
    clean = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(clean.split(b'"')[::2])


def nesting_exceeds(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays/objects deeper than `max_depth`, found without
    parsing it (a parser is what deep nesting breaks); malformed text is left to the parser.

    Exact, ignoring brackets inside strings. A body over EXACT_UP_TO bytes (a batch) whose
    brackets, those inside strings included, never nest deeper is let through without the
    exact count, which costs about a parse: only strings holding more closing than opening
    brackets could hide depth then, and the parser's own recursion guard (RecursionError,
    answered 400) still bounds what gets through.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    if len(body) > EXACT_UP_TO and _deepest(body) <= max_depth:
        return False
    return _deepest(_outside_strings(body)) > max_depth


def may_hold_bad_text(body: bytes) -> bool:
    """False when the JSON text `body` certainly parses to no NUL and no lone surrogate (a
    regular-expression scan, far cheaper than the parse that would tell for sure)."""
    return _MAYBE_BAD_JSON.search(body) is not None


class UnacceptableJSON(ValueError):
    """JSON that parses (or would) but is refused: too deep, or text that is not Unicode/NUL."""

    def __init__(self, fault: TextFault) -> None:
        super().__init__(str(fault))
        self.fault = fault


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for what a client sent: raises ValueError for text that is not JSON and
    UnacceptableJSON (a ValueError) for JSON too deep or holding NUL or lone surrogates."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if nesting_exceeds(raw, max_depth):
        raise UnacceptableJSON(TextFault((), f"is nested deeper than {max_depth} levels"))
    try:
        value = json.loads(data)
    except RecursionError as exc:  # pragma: no cover - nesting_exceeds refuses these first
        raise UnacceptableJSON(TextFault((), "is nested too deeply")) from exc
    if isinstance(data, bytes) and not may_hold_bad_text(data):
        return value
    fault = find_fault(value, max_depth=max_depth)
    if fault is not None:
        raise UnacceptableJSON(fault)
    return value
