"""Bitstring Status List encoding, against the spec's rules and the 1EdTech fixture list."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.status import bitstring
from conftest import STANDARDS


def test_empty_list_is_all_zero_bits_of_minimum_size() -> None:
    raw = bitstring.decode(bitstring.encode([]))
    assert len(raw) * 8 == bitstring.MIN_LIST_SIZE
    assert not any(raw)


def test_index_zero_is_the_left_most_bit() -> None:
    raw = bitstring.decode(bitstring.encode([0, 9], size=16))
    assert raw == bytes([0b1000_0000, 0b0100_0000])


@settings(deadline=None, max_examples=40)  # gzip of 16 KiB per example; CI cores are shared
@given(st.sets(st.integers(min_value=0, max_value=bitstring.MIN_LIST_SIZE - 1), max_size=50))
def test_round_trip(indices: set[int]) -> None:
    raw = bitstring.decode(bitstring.encode(indices))
    assert {i for i in range(len(raw) * 8) if bitstring.bit(raw, i)} == indices


def test_encoding_is_multibase_base64url_gzip() -> None:
    encoded = bitstring.encode([5])
    assert encoded.startswith("u")
    assert not set("=+/") & set(encoded)
    body = encoded[1:]
    assert (
        gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))[0] == 0b0000_0100
    )


@pytest.mark.parametrize(
    "bad",
    ["", "zabc", "u!!!", "u" + base64.urlsafe_b64encode(b"not gzip").decode().rstrip("=")],
)
def test_undecodable_lists_are_refused(bad: str) -> None:
    with pytest.raises(bitstring.StatusListError):
        bitstring.decode(bad)


def test_compression_bomb_is_refused() -> None:
    bomb = gzip.compress(bytes(bitstring.MAX_DECODED_BYTES + 1024))
    encoded = "u" + base64.urlsafe_b64encode(bomb).decode().rstrip("=")
    with pytest.raises(bitstring.StatusListError, match="size limit"):
        bitstring.decode(encoded)


def test_out_of_range_index_is_refused() -> None:
    with pytest.raises(bitstring.StatusListError):
        bitstring.encode([16], size=16)
    with pytest.raises(bitstring.StatusListError):
        bitstring.bit(bytes(2), 16)


def test_decodes_the_1edtech_fixture_list() -> None:
    """The validator's own BitstringStatusListCredential fixture decodes, and names revoked entries."""
    fixture = json.loads(
        (STANDARDS / "validator-fixtures/ob30/bit-string-list/testlist").read_text()
    )
    raw = bitstring.decode(fixture["credentialSubject"]["encodedList"])
    revoked = json.loads(
        (
            STANDARDS / "validator-fixtures/ob30/bit-string-list/credential-status-revoked.json"
        ).read_text()
    )
    index = int(revoked["credentialStatus"]["statusListIndex"])
    assert bitstring.bit(raw, index) is True
