"""Bitstring Status List v1.0 encoding: pure functions, no I/O.

The list is a bitstring (index 0 is the left-most bit, i.e. the most significant bit of the first
byte), GZIP-compressed and multibase-encoded as base64url without padding (prefix `u`).
"""

from __future__ import annotations

import base64
import gzip
import io
import secrets
from collections.abc import Iterable

MIN_LIST_SIZE = 131_072  # bits: the spec's minimum, for herd privacy
MAX_DECODED_BYTES = 16 * 1024 * 1024  # refuse lists that inflate beyond 16 MiB (zip bombs)


class StatusListError(ValueError):
    """An encoded list that cannot be decoded, or an index outside it."""


def encode(set_indices: Iterable[int], *, size: int = MIN_LIST_SIZE) -> str:
    """The `encodedList` value for a list of `size` bits with `set_indices` set to 1."""
    if size % 8:
        raise StatusListError("a status list's size must be a whole number of bytes")
    bits = bytearray(size // 8)
    for index in set_indices:
        if not 0 <= index < size:
            raise StatusListError(f"index {index} is outside a list of {size} entries")
        bits[index // 8] |= 0x80 >> (index % 8)
    compressed = gzip.compress(bytes(bits), compresslevel=9, mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")


def decode(encoded_list: str) -> bytes:
    """The raw bitstring of an `encodedList`, inflated with a cap against compression bombs."""
    if not isinstance(encoded_list, str) or not encoded_list.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (prefix 'u')")
    body = encoded_list[1:]
    try:
        compressed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:
        raise StatusListError("encodedList is not valid base64url") from exc
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as stream:
            raw = stream.read(MAX_DECODED_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise StatusListError("encodedList is not GZIP data") from exc
    if len(raw) > MAX_DECODED_BYTES:
        raise StatusListError("the status list inflates beyond the size limit")
    if not raw:
        raise StatusListError("the status list is empty")
    return raw


def bit(bitstring: bytes, index: int) -> bool:
    """Whether the entry at `index` is set (index 0 = left-most bit)."""
    if not 0 <= index < len(bitstring) * 8:
        raise StatusListError(f"index {index} is outside the list of {len(bitstring) * 8} entries")
    return bool(bitstring[index // 8] & (0x80 >> (index % 8)))


def random_index(size: int = MIN_LIST_SIZE) -> int:
    """A uniformly random index: allocation order must not reveal issuance order (spec privacy guidance)."""
    return secrets.randbelow(size)
