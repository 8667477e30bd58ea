"""LinkedIn "add to profile": the certification URL and the same fields for copying by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"


@dataclass(frozen=True)
class Certification:
    """What LinkedIn's certification form asks for; shown on the page too, since LinkedIn may
    ignore the pre-filled values (it does for organisations it cannot match)."""

    name: str
    organization_name: str
    organization_id: str | None
    issued: datetime
    expires: datetime | None
    cert_url: str
    cert_id: str

    @property
    def add_url(self) -> str:
        return add_to_profile_url(self)


def add_to_profile_url(cert: Certification) -> str:
    """The add-to-profile link: organisation by id when the issuer has one, else by name;
    expiry only for credentials that expire. Every value is form-encoded by `urlencode`."""
    params: list[tuple[str, str]] = [("startTask", "CERTIFICATION_NAME"), ("name", cert.name)]
    if cert.organization_id:
        params.append(("organizationId", cert.organization_id))
    else:
        params.append(("organizationName", cert.organization_name))
    params += [("issueYear", str(cert.issued.year)), ("issueMonth", str(cert.issued.month))]
    if cert.expires is not None:
        params += [
            ("expirationYear", str(cert.expires.year)),
            ("expirationMonth", str(cert.expires.month)),
        ]
    params += [("certUrl", cert.cert_url), ("certId", cert.cert_id)]
    return f"{ADD_TO_PROFILE}?{urlencode(params)}"
