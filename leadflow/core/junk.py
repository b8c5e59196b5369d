"""Junk verdicts: a lead set aside (never deleted) with the reason a person can read."""

from __future__ import annotations

from leadflow.core.cleaning import email_domain, no_contact_problems
from leadflow.core.errors import InvalidInput
from leadflow.core.lead import CONTENT_FIELDS, CleanLead, LeadIn
from leadflow.core.rules import Junk, RulesFile


def junk_reason(lead: CleanLead, rules: Junk) -> str | None:
    """Why this lead is junk, or None when it is not."""
    for label, value in (("source", lead.source), ("channel", lead.channel)):
        if value and value.casefold() in rules.blocked_sources:
            return f"{label} '{value}' is blocked"
    domain = email_domain(lead.email)
    if domain:
        for own in rules.own_domains:
            if domain == own or domain.endswith("." + own):
                return f"e-mail {lead.email} is from the company's own domain {own}"
    for label, text in (("name", lead.name), ("company", lead.company), ("message", lead.message)):
        if text:
            folded = text.casefold()
            for word in rules.keywords:
                if word in folded:
                    return f"{label} contains the junk keyword '{word}'"
    if rules.no_contact == "junk" and not lead.reachable:
        wrong = "; ".join(p.reason for p in lead.problems if p.field in ("phone", "email", "messenger_id"))
        return f"no usable way to contact: {wrong}" if wrong else "no way to contact: no phone, e-mail or messenger id"
    return None


def check_usable(lead_in: LeadIn, clean: CleanLead, rules: RulesFile) -> None:
    """Refuse what cannot be a lead: nothing in it at all, or (when the rules say so) no way to reach the client."""
    if not any(getattr(lead_in, name) for name in CONTENT_FIELDS):
        raise InvalidInput.one("body", "the lead is empty: send at least a phone, an e-mail or a messenger_id")
    if not clean.reachable and rules.junk.no_contact == "refuse":
        raise InvalidInput(no_contact_problems(clean))
