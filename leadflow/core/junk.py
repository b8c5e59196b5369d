"""Junk verdicts: a lead set aside (never deleted) with the reason a person can read."""

from __future__ import annotations

from leadflow.core.cleaning import email_domain
from leadflow.core.lead import CleanLead
from leadflow.core.rules import Junk


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
    if rules.require_contact and not lead.phone and not lead.email:
        return "no way to contact: neither phone nor e-mail"
    return None
