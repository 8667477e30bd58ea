"""Where the n-th credential of a status list sits: a keyed pseudorandom permutation of its indices.

Bitstring Status List v1.0 asks issuers to place credentials at random positions, so that an index
reveals nothing about the order or time of issuance. Drawing random indices and asking the
database which are free costs a row per index and gets slower as a list fills. Instead each list
hands out *slots* 0, 1, 2, … from a counter (one short UPDATE for any number of them) and a
secret per-list key maps slot `n` to index `P(n)`: P is a bijection of range(size), so no two
slots ever share an index, and without the key the indices look random.

P is a balanced Feistel network over the smallest even number of bits that covers `size`, with
"cycle walking" (re-apply until the value falls inside the list) to stay within range(size). Each
round's function is a table of keyed BLAKE2b outputs over one half of the bits, computed once per
list: a lookup per round then costs a few hundred nanoseconds. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

ROUNDS = 8
KEY_BYTES = 32


def new_key() -> str:
    """A fresh list key (hex), stored with the list and never published."""
    return secrets.token_hex(KEY_BYTES)


class IndexPermutation:
    """A bijection of range(size) determined by `key`: `permutation(slot)` is the slot's index."""

    def __init__(self, key: bytes, size: int) -> None:
        if size < 1:
            raise ValueError("a permutation needs at least one element")
        if not key:
            raise ValueError("a permutation needs a key")
        self.size = size
        bits = max(2, (size - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        width = (self._half + 7) // 8
        self._tables = tuple(
            tuple(
                int.from_bytes(
                    hashlib.blake2b(
                        bytes((round_,)) + x.to_bytes(width, "big"), key=key[:64], digest_size=8
                    ).digest(),
                    "big",
                )
                & self._mask
                for x in range(1 << self._half)
            )
            for round_ in range(ROUNDS)
        )

    def __call__(self, slot: int) -> int:
        if not 0 <= slot < self.size:
            raise ValueError(f"slot {slot} is outside a list of {self.size}")
        half, mask, tables, size = self._half, self._mask, self._tables, self.size
        x = slot
        while True:
            left, right = x >> half, x & mask
            for table in tables:
                left, right = right, left ^ table[right]
            x = (left << half) | right
            # Cycle walking: the Feistel domain is up to 4x the list; a value outside it is fed
            # back in, which keeps the map a bijection of range(size) (and ends: the cycle through
            # `slot` contains at least one in-range value, `slot` itself).
            if x < size:
                return x


@lru_cache(maxsize=64)
def permutation(key_hex: str, size: int) -> IndexPermutation:
    """The permutation of a list, built once per process (the round tables cost ~1 ms)."""
    return IndexPermutation(bytes.fromhex(key_hex), size)
