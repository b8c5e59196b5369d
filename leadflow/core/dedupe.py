"""Which existing client a new lead belongs to, chosen from the matches storage found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

MatchKind = Literal["contact", "lead", "company"]
# A person matched by phone or e-mail outranks an open lead, which outranks a fuzzy company name.
_RANK = {("contact", "phone"): 0, ("contact", "email"): 0, ("lead", "phone"): 1, ("lead", "email"): 1}


@dataclass(frozen=True, slots=True)
class Match:
    kind: MatchKind
    id: int
    by: Literal["phone", "email", "company"]
    value: str
    owner_id: int | None
    owner_name: str | None = None
    contact_id: int | None = None
    company_id: int | None = None
    score: float = 100.0  # similarity for company names


@dataclass(frozen=True, slots=True)
class Duplicate:
    match: Match
    reason: str


def choose_duplicate(matches: Iterable[Match]) -> Duplicate | None:
    """The best match, preferring ones with an owner; None when nothing matched."""
    ordered = sorted(
        matches,
        key=lambda m: (m.owner_id is None, _RANK.get((m.kind, m.by), 2), -m.score, m.id),
    )
    if not ordered:
        return None
    best = ordered[0]
    what = {"contact": "existing contact", "lead": "open lead", "company": "existing company"}[best.kind]
    how = f"{best.by} {best.value}" if best.by != "company" else f"company name '{best.value}' ({best.score:.0f}%)"
    owner = f", owned by {best.owner_name}" if best.owner_name else ", no owner yet"
    return Duplicate(best, f"duplicate of {what} #{best.id} by {how}{owner}")
