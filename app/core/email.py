"""`Email`: pydantic's `EmailStr`, with a fast path for plain ASCII addresses.

Bulk issuance validates up to 10,000 recipients per request, and `EmailStr` hands every address
to `email_validator.validate_email` (25-60 µs each: the largest part of validating a row). Most
addresses are plain ASCII `local@domain.tld`; for those a compiled regular expression plus a few
checks decide the same thing email_validator would, and give the same normalized value. Anything
the fast path is not sure of (non-ASCII, quoted local parts, `Name <addr>`, surrounding spaces,
long local parts, Punycode labels, special-use names, ...) goes to pydantic's own
`validate_email`, so refusals carry exactly `EmailStr`'s errors (`value_error`,
"value is not a valid email address: ...").
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Final

import email_validator
from email_validator import rfc_constants
from pydantic import AfterValidator, WithJsonSchema
from pydantic.networks import validate_email

__all__ = ["Email", "fast_normalize", "validate"]

# email_validator's rules (2.x, called by pydantic with check_deliverability=False) that the
# fast path mirrors, each no looser than the library's:
# - local part: RFC 5322 dot-atom of atext (rfc_constants.DOT_ATOM_TEXT), 1-64 characters (the
#   library only enforces 64 in strict mode, so longer local parts are left to it);
# - domain: at least two dot-separated labels of letters, digits and hyphens, 1-63 characters,
#   not starting or ending with a hyphen; no label with "--" in positions 3-4 (the library
#   refuses those, RFC 5890 R-LDH, except "xn--" Punycode, which it decodes: left to it too);
#   the last label all letters (the library wants a TLD ending with a letter);
# - whole address at most 254 characters (so the domain is at most 252 < 253);
# - not under a special-use name (email_validator.SPECIAL_USE_DOMAIN_NAMES: arpa, invalid,
#   local, localhost, onion, test).
# The library's normalized form of such an address is the local part unchanged (lower-cased if
# it is an RFC 2142 role mailbox such as "Info") and the domain lower-cased (UTS-46 mapping).
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL: Final = r"(?!..--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FAST_EMAIL: Final = re.compile(
    rf"(?=[^@]{{1,64}}@)({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+[A-Za-z]{{1,63}})"
)
_MAX_LENGTH: Final = 254


@lru_cache(maxsize=4)
def _special_suffixes(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("." + name for name in names)


def fast_normalize(value: str) -> str | None:
    """The normalized address if `value` is a plain ASCII address email_validator accepts.

    None when the fast path is not sure: the caller then asks email_validator (via pydantic).
    """
    if len(value) > _MAX_LENGTH:
        return None
    m = _FAST_EMAIL.fullmatch(value)
    if m is None:
        return None
    local, domain = m.groups()
    domain = domain.lower()
    # Read at each call, as email_validator does, so a changed list is honoured.
    specials = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    if domain in specials or domain.endswith(_special_suffixes(specials)):
        return None
    if local.lower() in rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES:
        local = local.lower()
    return f"{local}@{domain}"


def validate(value: str) -> str:
    """`EmailStr`'s validation: the normalized address, or pydantic's `value_error`."""
    normalized = fast_normalize(value)
    if normalized is not None:
        return normalized
    return validate_email(value)[1]


Email = Annotated[
    str,
    AfterValidator(validate),
    WithJsonSchema({"type": "string", "format": "email"}),
]
"""An email address, validated and normalized exactly as `pydantic.EmailStr` does, faster."""
