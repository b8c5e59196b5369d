"""Normalise what a channel sent: phones to E.164, e-mails to one spelling, company names to a match key."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType

from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.lead import CONTACT_FIELDS, CleanLead, LeadIn

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "has no valid country code",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}


def normalize_phone(raw: str, default_region: str) -> tuple[str, str]:
    """Return (E.164, kind) where kind is mobile, landline or other; raise InvalidInput for people."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "is not a phone number")
        raise InvalidInput.one("phone", f"phone '{raw}' {reason} for region {default_region}") from None
    # number_type is UNKNOWN exactly when is_valid_number is false; asking once halves the metadata matching.
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        length = phonenumbers.is_possible_number_with_reason(number)
        why = {
            phonenumbers.ValidationResult.TOO_SHORT: "is too short",
            phonenumbers.ValidationResult.TOO_LONG: "is too long",
        }.get(length, "is not a valid number")
        region = phonenumbers.region_code_for_number(number) or default_region
        raise InvalidInput.one("phone", f"phone '{raw}' {why} for region {region}")
    label = "mobile" if kind in _MOBILE_TYPES else "landline" if kind == PhoneNumberType.FIXED_LINE else "other"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), label


def normalize_email(raw: str) -> str:
    """Syntax-check an address (no DNS) and return it in one spelling, lower case."""
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput.one("email", f"e-mail '{raw}' is not valid: {exc}") from None
    return info.normalized.lower()


def email_domain(email: str | None) -> str | None:
    return email.rsplit("@", 1)[1] if email and "@" in email else None


# Legal forms and filler words that do not tell two companies apart.
_LEGAL_FORMS = {
    "llc", "ltd", "inc", "corp", "co", "gmbh", "plc", "sa", "ag", "the", "company", "group",
    "тов", "ооо", "пп", "фоп", "тзов", "пат", "прат", "ат", "зао", "оао", "пао", "ип", "компания", "компанія",
}  # fmt: skip
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)
def company_key(name: str) -> str:
    """'ТОВ «Ромашка-Плюс»' and 'Romashka plus LLC' style noise removed: lower case, no punctuation or legal form."""
    text = unicodedata.normalize("NFKC", name).casefold()
    words = [w for w in _NON_WORD.split(text) if w and w not in _LEGAL_FORMS]
    return " ".join(words)


def company_block(key: str) -> str:
    """A short blocking key so fuzzy matching compares a handful of names, not the whole base."""
    return key.replace(" ", "")[:3]


def _phone(raw: str, region: str) -> tuple[str, str]:
    try:
        return normalize_phone(raw, region)
    except InvalidInput:
        # Integrations send numbers as digits without the plus ("380671234567"): try it as international.
        digits = raw.lstrip("0")
        if raw.isdigit() and len(digits) >= 10:
            try:
                return normalize_phone("+" + digits, region)
            except InvalidInput:
                pass
        raise


def clean_lead(lead: LeadIn, default_region: str, problems: Sequence[FieldProblem] = ()) -> CleanLead:
    """Normalise; a phone or e-mail that cannot be used is left out and named in `problems`, never raised.

    Whether a lead without any usable contact is refused, set aside or routed is the intake's decision.
    """
    found = list(problems)
    phone = phone_type = email = None
    if lead.phone:
        try:
            phone, phone_type = _phone(lead.phone, lead.region or default_region)
        except InvalidInput as exc:
            found += exc.problems
    if lead.email:
        try:
            email = normalize_email(lead.email)
        except InvalidInput as exc:
            found += exc.problems
    key = company_key(lead.company) if lead.company else None
    utm = {
        name: value
        for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
        if (value := getattr(lead, name))
    }
    return CleanLead(
        channel=lead.channel,
        source=lead.source,
        external_id=lead.external_id,
        name=lead.name,
        phone=phone,
        phone_type=phone_type,
        email=email,
        company=lead.company,
        company_key=key or None,
        region=lead.region,
        product=lead.product,
        language=lead.language,
        budget=lead.budget,
        message=lead.message,
        utm=utm,
        messenger_id=lead.messenger_id,
        extra=lead.extra or {},
        problems=tuple(found),
    )


def no_contact_problems(lead: CleanLead) -> list[FieldProblem]:
    """Why a lead cannot be used: the contact fields that were wrong, or that none was given."""
    wrong = [p for p in lead.problems if p.field in CONTACT_FIELDS]
    given = "; ".join(p.reason for p in wrong)
    why = f"no usable way to reach the client ({given})" if wrong else "no way to reach the client"
    return [*wrong, FieldProblem("contact", f"{why}: give a valid phone, e-mail or messenger_id")]
