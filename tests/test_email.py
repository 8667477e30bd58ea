"""`app.core.email.Email` behaves exactly like pydantic's `EmailStr`, only faster for plain addresses."""

from __future__ import annotations

from typing import Any

import budget
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from app.core.email import Email, fast_normalize
from app.credentials.schemas import RecipientIn
from app.issuers.schemas import IssuerCreate

OURS: TypeAdapter[str] = TypeAdapter(Email)
THEIRS: TypeAdapter[str] = TypeAdapter(EmailStr)

ATEXT = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-"
HOST = "abcxyzABCXYZ0189-"
SPECIAL = ["test", "local", "localhost", "invalid", "onion", "arpa", "TEST", "Onion"]
TLDS = [
    *SPECIAL,
    "com",
    "ORG",
    "c",
    "io",
    "co1",
    "1a",
    "123",
    "xn--p1ai",
    "a-b",
    "q" * 63,
    "q" * 64,
]


def _atoms(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(alphabet), min_size=0, max_size=max_size)


local_parts = st.one_of(
    _atoms(ATEXT + ".", 70),
    st.lists(_atoms(ATEXT, 12), min_size=1, max_size=6).map(".".join),
    st.sampled_from(
        ["Info", "POSTMASTER", "sales", "noc", "www", "Infos", "info.x", "a..b", ".a", "a."]
    ),
    st.text(st.sampled_from(ATEXT + '."\\ @éß'), max_size=20).map(lambda s: f'"{s}"'),
    st.integers(60, 70).map(lambda n: "l" * n),
)
labels = st.one_of(
    _atoms(HOST, 66),
    st.sampled_from(
        ["ab--cd", "xn--bcher-kva", "XN--BCHER-KVA", "xn--abc", "a--b", "-a", "a-", "a_b", "Ex"]
    ),
    st.text(st.sampled_from(HOST + "éＥ。"), max_size=6),
)
domains = st.builds(
    lambda ls, tld, dot: ".".join([*ls, tld]) + dot,
    st.lists(labels, min_size=0, max_size=5),
    st.one_of(st.sampled_from(TLDS), _atoms(HOST, 8)),
    st.sampled_from(["", "", "", "."]),
)
structured = st.builds(
    lambda pre, local, dom, post: f"{pre}{local}@{dom}{post}",
    st.sampled_from(["", "", "", " ", "\t", "John <", '"J D" <', "\n"]),
    local_parts,
    domains,
    st.sampled_from(["", "", "", " ", ">", "\n", "\u00a0"]),
)
noise = st.text(
    st.sampled_from("abAZ09.@-+\"' _<>éßİKＡ＠\u0301\u200b\n"),
    max_size=30,
)
addresses = st.one_of(st.emails(), noise, structured, structured)


def _reference(value: str) -> tuple[str | None, str | None]:
    """(normalized, None) from pydantic's own validate_email, or (None, error message)."""
    try:
        return validate_email(value)[1], None
    except PydanticCustomError as e:
        return None, str(e)


def _outcome(adapter: TypeAdapter[str], value: Any) -> tuple[str | None, Any]:
    try:
        return adapter.validate_python(value), None
    except ValidationError as e:
        return None, e.errors(include_url=False)


@pytest.mark.slow
@given(addresses)
@settings(max_examples=budget.examples(3000, ci=600), deadline=None)
@example("learner1@example.com")
@example("Info@Example.COM")
@example("a@xn--bcher-kva.ch")
def test_email_is_email_str(value: str) -> None:
    normalized, message = _reference(value)
    fast = fast_normalize(value)
    # The fast path only ever accepts what email_validator accepts, and normalizes alike.
    assert fast is None or fast == normalized
    ours, our_errors = _outcome(OURS, value)
    theirs, their_errors = _outcome(THEIRS, value)
    assert ours == theirs == normalized
    assert our_errors == their_errors
    if message is not None:
        assert our_errors is not None
        assert our_errors[0]["msg"] == message


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("learner42@example.com", "learner42@example.com"),
        ("Ada.Lovelace+badges@Mail.Example.ORG", "Ada.Lovelace+badges@mail.example.org"),
        ("o'brien@example.co.uk", "o'brien@example.co.uk"),
        ("x_y-z!#$%&*/=?^`{|}~@a-b.c9.io", "x_y-z!#$%&*/=?^`{|}~@a-b.c9.io"),
        ("INFO@EXAMPLE.COM", "info@example.com"),  # RFC 2142 role names are case-insensitive
        ("a@a--b.com", "a@a--b.com"),  # "--" is refused only in positions 3-4 of a label
        ("l" * 64 + "@" + "d" * 63 + ".com", "l" * 64 + "@" + "d" * 63 + ".com"),
    ],
)
def test_fast_path_accepts_plain_addresses(value: str, normalized: str) -> None:
    assert fast_normalize(value) == normalized
    assert validate_email(value)[1] == normalized
    assert OURS.validate_python(value) == normalized


@pytest.mark.parametrize(
    "value",
    [
        "  a@example.com ",
        "John Doe <john@example.com>",
        "jörg@example.com",
        "a@bücher.de",
        "a@xn--bcher-kva.ch",
        "l" * 65 + "@example.com",  # email_validator allows long local parts outside strict mode
    ],
)
def test_fallback_accepts_what_email_str_accepts(value: str) -> None:
    assert fast_normalize(value) is None
    assert OURS.validate_python(value) == THEIRS.validate_python(value)


@pytest.mark.parametrize(
    "value",
    [
        "a@b",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-x.com",
        "a@x-.com",
        "a@ab--cd.com",
        "a@example.test",
        "a@sub.example.LOCAL",
        "a@host.localhost",
        "a@localhost",
        "a@x.onion",
        "a@1.168.192.in-addr.arpa",
        "a@x.invalid",
        "a@example.123",
        "a@" + "d" * 64 + ".com",
        "l" * 64 + "@" + ".".join(["d" * 63] * 3) + ".com",  # 255 characters
        "@example.com",
        "a@",
        "a b@example.com",
        "a@b@example.com",
        "a@[127.0.0.1]",
        '"quoted local"@example.com',
        "a@example.com\n",
        "",
    ],
)
def test_refused_like_email_str(value: str) -> None:
    assert fast_normalize(value) is None
    with pytest.raises(ValidationError) as ours:
        OURS.validate_python(value)
    with pytest.raises(ValidationError) as theirs:
        THEIRS.validate_python(value)
    assert ours.value.errors(include_url=False) == theirs.value.errors(include_url=False)
    assert ours.value.errors()[0]["type"] == "value_error"
    assert ours.value.errors()[0]["msg"].startswith("value is not a valid email address: ")


@pytest.mark.parametrize("value", [42, 1.5, None, ["a@example.com"], b"a@Example.com"])
def test_non_strings_like_email_str(value: Any) -> None:
    assert _outcome(OURS, value) == _outcome(THEIRS, value)


def test_json_schema_unchanged() -> None:
    email_schema = {"type": "string", "format": "email"}
    assert OURS.json_schema() == THEIRS.json_schema() == email_schema
    for model in (RecipientIn, IssuerCreate):
        prop = model.model_json_schema()["properties"]["email"]
        assert prop["anyOf"] == [email_schema, {"type": "null"}]


def test_recipient_normalizes_email() -> None:
    assert RecipientIn(email="Ada@Example.COM").email == "Ada@example.com"
    with pytest.raises(ValidationError, match="value is not a valid email address"):
        RecipientIn(email="ada@example.test")
