"""What the verification page shows: a plain view model built from a verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

from app.core.config import Settings
from app.core.identifiers import canonical_did
from app.sharing import service as sharing
from app.sharing.linkedin import Certification
from app.verify.envelope import parse_time
from app.verify.schemas import CheckName, CheckResult, Status, TrustLevel
from app.verify.verdict import Verification

BANNERS: dict[Status, tuple[str, str]] = {
    Status.valid: ("Verified", "This credential is authentic and currently valid."),
    Status.expired: ("Expired", "This credential is authentic but its validity period has ended."),
    Status.not_yet_valid: (
        "Not yet valid",
        "This credential is authentic but its validity period has not begun.",
    ),
    Status.revoked: ("Revoked", "The issuer has revoked this credential."),
    Status.suspended: ("Suspended", "The issuer has suspended this credential for now."),
    Status.invalid: ("Not valid", "This credential failed verification: do not rely on it."),
    Status.unknown: (
        "Could not verify",
        "A check could not be carried out, so validity is unknown.",
    ),
    Status.issuer_unconfirmed: (
        "Issuer not confirmed",
        "The signature is genuine, but nobody confirms who the issuer is: its name is self-declared.",
    ),
}


# Left out of a badge emblem's initials: "SQL for Analysts" reads SA, not SF.
_MINOR_WORDS = frozenset({"a", "an", "and", "for", "in", "of", "on", "the", "to", "with", "&"})


@dataclass
class Skill:
    name: str
    url: str | None = None
    framework: str | None = None
    code: str | None = None


@dataclass
class PageModel:
    status: str
    banner_title: str
    banner_text: str
    verified: bool
    checks: list[dict[str, str]]
    credential_id: str | None = None
    record_id: str | None = None
    achievement_name: str | None = None
    achievement_description: str | None = None
    achievement_type: str | None = None
    achievement_url: str | None = None
    criteria: str | None = None
    criteria_url: str | None = None
    image: str | None = None
    issuer_name: str | None = None
    issuer_id: str | None = None
    issuer_url: str | None = None
    issuer_page: str | None = None
    # Who stands behind the issuer (the verdict's trust level), in words for people.
    trust_level: str | None = None
    trust_text: str | None = None
    issuer_domain: str | None = None
    issuer_name_claimed: bool = False  # the name shown is the issuer's own word, nobody's else
    recipient_name: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    awarded: datetime | None = None
    skills: list[Skill] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    initials: str = "?"
    # When this verdict was reached (the page says "checked just now at 18:02 UTC").
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Revoked / suspended: when and why, from our issuance record (a foreign status list has none).
    status_since: datetime | None = None
    status_reason: str | None = None
    # The content was not proven (signature or binding failed, or could not be checked): the page
    # shows it as the credential's own claims, at reduced weight, with no link that lends trust.
    unverified: bool = True
    badge_url: str | None = None
    issuer_logo: str | None = None
    issuer_host: str | None = None  # the issuer website's domain, shown beside its name
    achievement_page: str | None = None  # our achievement page, for a credential we issued
    has_content: bool = True  # False: the token held nothing readable as a credential

    @property
    def shareable(self) -> bool:
        """Sharing and printing only while the credential is good: never revoked, suspended,
        expired or unproven."""
        return self.status == Status.valid.value and self.record_id is not None

    @property
    def occupations(self) -> list[Skill]:
        """Alignments to a framework (an occupation or competency), listed apart from tags."""
        return [s for s in self.skills if s.framework]

    @property
    def alignments(self) -> list[Skill]:
        """Alignments without a framework: skills named by the issuer."""
        return [s for s in self.skills if not s.framework]


def _dict(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _https(value: Any) -> str | None:
    url = value.get("id") if isinstance(value, dict) else value
    return url if isinstance(url, str) and url.startswith("https://") else None


def _day(value: datetime) -> str:
    return value.strftime("%-d %b %Y")


def _banner_text(model: PageModel, status: Status, default: str) -> str:
    """The banner's sentence with the dates and reasons a person needs to act on it."""
    reason = f" Reason given: {model.status_reason}" if model.status_reason else ""
    if reason and not reason.endswith((".", "!", "?")):
        reason += "."
    if status is Status.revoked:
        when = f" on {_day(model.status_since)}" if model.status_since else ""
        return f"The issuer revoked this credential{when}: do not rely on it.{reason}"
    if status is Status.suspended:
        when = f" on {_day(model.status_since)}" if model.status_since else ""
        return f"The issuer suspended this credential{when}; it may be reinstated.{reason}"
    if status is Status.expired and model.valid_until:
        return f"This credential is authentic, but it expired on {_day(model.valid_until)}."
    if status is Status.not_yet_valid and model.valid_from:
        return f"This credential is authentic, but it is valid only from {_day(model.valid_from)}."
    return default


def build_page_model(settings: Settings, verification: Verification) -> PageModel:
    model = _build_page_model(settings, verification)
    status = verification.status
    record = verification.record
    if record is not None and status in {Status.revoked, Status.suspended}:
        model.status_since = record.status_changed_at
        model.status_reason = _text(record.status_reason)
    model.banner_text = _banner_text(model, status, model.banner_text)
    model.has_content = verification.credential is not None
    if not model.has_content:
        reason = next((c.detail for c in verification.checks if c.result == CheckResult.fail), "")
        model.banner_text = (
            f"Nothing in it can be read as a credential: do not rely on it. {reason}"
        )
    model.unverified = not verification.identity_established
    if model.unverified:
        # Nothing the token says is proven: no link or image may lend it our credibility.
        model.issuer_page = None
        model.image = None
    else:
        if model.record_id is not None:
            model.badge_url = f"/credentials/{model.record_id}/badge.svg"
        if model.achievement_url and model.achievement_url.startswith(
            settings.url("/achievements/")
        ):
            model.achievement_page = model.achievement_url
    return model


def _build_page_model(settings: Settings, verification: Verification) -> PageModel:
    status = verification.status
    title, text = BANNERS[status]
    model = PageModel(
        status=status.value,
        banner_title=title,
        banner_text=text,
        verified=status is Status.valid,
        checks=[
            {"check": c.check.value, "result": c.result.value, "detail": c.detail}
            for c in verification.checks
            if c.result != CheckResult.skipped or c.check.value in {"status", "record"}
        ],
    )
    c = verification.credential
    if c is None:
        return model
    issuer = c.get("issuer")
    issuer_obj = issuer if isinstance(issuer, dict) else {"id": issuer}
    subject = _dict(c.get("credentialSubject"))
    achievement = _dict(subject.get("achievement"))
    criteria = _dict(achievement.get("criteria"))
    image = achievement.get("image") or c.get("image")
    image_url = image.get("id") if isinstance(image, dict) else image
    model.credential_id = _text(c.get("id"))
    model.record_id = str(verification.record.id) if verification.record is not None else None
    model.achievement_name = _text(achievement.get("name")) or _text(c.get("name"))
    model.achievement_description = _text(achievement.get("description")) or _text(
        c.get("description")
    )
    model.achievement_type = _text(achievement.get("achievementType"))
    model.achievement_url = _text(achievement.get("id"))
    model.criteria = _text(criteria.get("narrative"))
    model.criteria_url = _text(criteria.get("id"))
    model.image = (
        image_url if isinstance(image_url, str) and image_url.startswith("https://") else None
    )
    model.issuer_name = _text(issuer_obj.get("name"))
    model.issuer_id = _text(issuer_obj.get("id"))
    model.issuer_url = _text(issuer_obj.get("url"))
    if model.issuer_url and model.issuer_url.startswith(("https://", "http://")):
        model.issuer_host = urlsplit(model.issuer_url).hostname
    else:
        model.issuer_url = None
    model.issuer_logo = _https(issuer_obj.get("image"))
    _describe_trust(settings, model, verification)
    for ident in subject.get("identifier") or []:
        if (
            isinstance(ident, dict)
            and ident.get("identityType") == "name"
            and ident.get("hashed") is False
        ):
            model.recipient_name = _text(ident.get("identityHash"))
    if verification.record is not None and verification.record.recipient_name_hidden:
        # The recipient chose to keep their name off public pages (it stays in the signed JWT).
        model.recipient_name = None
    model.valid_from = parse_time(c.get("validFrom") or c.get("issuanceDate"))
    model.valid_until = parse_time(c.get("validUntil") or c.get("expirationDate"))
    model.awarded = parse_time(c.get("awardedDate"))
    for a in achievement.get("alignment") or []:
        if isinstance(a, dict) and _text(a.get("targetName")):
            model.skills.append(
                Skill(
                    name=a["targetName"],
                    url=_text(a.get("targetUrl")),
                    framework=_text(a.get("targetFramework")),
                    code=_text(a.get("targetCode")),
                )
            )
    model.tags = [t for t in achievement.get("tag") or [] if isinstance(t, str)]
    model.evidence = [e for e in c.get("evidence") or [] if isinstance(e, dict)]
    name = model.achievement_name or "?"
    words = [w for w in name.split() if w.lower() not in _MINOR_WORDS and w[0].isalnum()]
    model.initials = "".join(w[0] for w in (words or name.split())[:2]).upper() or "?"
    return model


def _describe_trust(settings: Settings, model: PageModel, verification: Verification) -> None:
    """The page's answer to "who certified it": the trust level, in plain words. Only a
    registered issuer links to its page here (a forged credential naming one of our issuers
    must not borrow its page)."""
    trust = verification.trust
    if trust is None:
        return
    model.trust_level = trust.level.value
    prefix = settings.issuer_did("")
    if trust.level is TrustLevel.registered and model.issuer_id:
        model.issuer_page = settings.url(
            f"/issuers/{canonical_did(model.issuer_id)[len(prefix) :]}"
        )
        model.trust_text = f"Registered with {urlsplit(settings.base_url).hostname}."
    elif trust.level is TrustLevel.listed:
        model.issuer_name = trust.name or model.issuer_name
        model.trust_text = "On this service's list of trusted issuers."
    elif trust.level is TrustLevel.domain:
        model.issuer_domain = trust.domain
        model.issuer_name_claimed = True
        model.trust_text = f"The name is the issuer's own; its key is published by {trust.domain}"
        if trust.domain_matches_url is True:
            model.trust_text += ", the domain of its website."
        elif trust.domain_matches_url is False:
            model.trust_text += ", not the domain of the website it names."
        else:
            model.trust_text += "."
    else:
        model.issuer_name_claimed = True
        name = f"“{model.issuer_name}”" if model.issuer_name else "The issuer's name"
        model.trust_text = (
            f"{name} is self-declared; nobody confirms who the issuer is."
            if verification.result_of(CheckName.trust) == CheckResult.fail
            else f"{name} is not confirmed: the issuer's identity was not established."
        )


def verification_context(
    settings: Settings,
    verification: Verification,
    *,
    submitted: bool = False,
    linkedin_organization_id: str | None = None,
) -> dict[str, Any]:
    model = build_page_model(settings, verification)
    record_id = model.record_id
    page_url = settings.url(f"/credentials/{record_id}") if record_id else None
    context: dict[str, Any] = {
        "page": model,
        "result": verification.result(),
        "submitted": submitted,
        "qr_svg_url": f"/credentials/{record_id}/qr.svg" if record_id else None,
        "json_url": f"/credentials/{record_id}?format=json" if record_id else None,
        "jwt_url": f"/credentials/{record_id}?format=jwt" if record_id else None,
        "page_url": page_url,
        "pdf_url": f"/credentials/{record_id}/certificate.pdf" if record_id else None,
        "service_host": urlsplit(settings.base_url).hostname,
        "share": None,
    }
    # The result of a pasted credential (`submitted`) is not the credential's own page.
    if record_id and page_url and not submitted:
        context["share"] = share_context(
            settings, model, page_url=page_url, linkedin_organization_id=linkedin_organization_id
        )
    return context


def share_context(
    settings: Settings,
    model: PageModel,
    *,
    page_url: str,
    linkedin_organization_id: str | None,
) -> dict[str, Any]:
    """What the page offers for sharing one of our credentials: LinkedIn, previews, embedding."""
    record_id = model.record_id or ""
    image = sharing.card_url(settings, record_id)
    alt = sharing.image_alt(model.achievement_name, model.issuer_name, model.recipient_name)
    linkedin = None
    if model.valid_from is not None:
        linkedin = Certification(
            name=model.achievement_name or "Credential",
            organization_name=model.issuer_name or "",
            organization_id=linkedin_organization_id or None,
            issued=model.valid_from,
            expires=model.valid_until,
            cert_url=page_url,
            cert_id=record_id,
        )
    title = model.achievement_name or "Credential"
    if model.issuer_name:
        title += f" · {model.issuer_name}"
    return {
        "title": title,
        "card_url": image,
        "card_width": sharing.CARD_WIDTH,
        "card_height": sharing.CARD_HEIGHT,
        "card_alt": alt,
        "embed_url": sharing.embed_url(settings, record_id),
        "oembed_url": sharing.oembed_url(settings, record_id),
        "snippet": sharing.embed_snippet(page_url=page_url, image_url=image, alt=alt),
        "iframe_snippet": (
            f'<iframe src="{sharing.embed_url(settings, record_id)}" width="{sharing.EMBED_WIDTH}" '
            f'height="{sharing.EMBED_HEIGHT}" title="{escape(title)}" loading="lazy" '
            'style="border:0;max-width:100%"></iframe>'
        ),
        "linkedin": linkedin,
    }
