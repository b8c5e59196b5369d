"""Which existing client a new lead belongs to, chosen from the matches storage found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

MatchKind = Literal["contact", "lead", "company", "account"]
# A person matched by phone or e-mail outranks an open lead, which outranks a fuzzy company name.
# Then a recorded company, then an account found through another person at the same company (name, then domain).
_RANK = {
    ("contact", "phone"): 0, ("contact", "email"): 0,
    ("lead", "phone"): 1, ("lead", "email"): 1, ("lead", "messenger_id"): 1,
    ("company", "company"): 2, ("account", "company"): 3, ("account", "domain"): 4,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Match:
    kind: MatchKind
    id: int
    by: Literal["phone", "email", "messenger_id", "company", "domain"]
    value: str
    owner_id: int | None
    owner_name: str | None = None
    contact_id: int | None = None
    company_id: int | None = None
    score: float = 100.0  # similarity for company names
    created_at: datetime | None = None
    source: Literal["lead", "contact", ""] = ""  # an account match: the open lead or contact of that company


@dataclass(frozen=True, slots=True)
class Duplicate:
    match: Match
    reason: str


def choose_duplicate(matches: Iterable[Match]) -> Duplicate | None:
    """The best match, preferring ones with an owner; None when nothing matched."""
    ordered = sorted(
        matches,
        key=lambda m: (m.owner_id is None, _RANK.get((m.kind, m.by), 5), -m.score, m.id),
    )
    if not ordered:
        return None
    best = ordered[0]
    owner = f", owned by {best.owner_name}" if best.owner_name else ", no owner yet"
    if best.kind == "account":
        of = "open lead" if best.source == "lead" else "contact"
        how = (
            f"company name '{best.value}' ({best.score:.0f}%)"
            if best.by == "company"
            else f"e-mail domain {best.value}"
        )
        return Duplicate(best, f"same account as {of} #{best.id} by {how}{owner}")
    what = {"contact": "existing contact", "lead": "open lead", "company": "existing company"}[best.kind]
    how = f"{best.by} {best.value}" if best.by != "company" else f"company name '{best.value}' ({best.score:.0f}%)"
    return Duplicate(best, f"duplicate of {what} #{best.id} by {how}{owner}")


_FOLDS_BY = frozenset({"phone", "email", "messenger_id"})


def fold_target(matches: Iterable[Match], now: datetime, window: timedelta | None) -> Match | None:
    """The client's open lead a new request joins: the newest one that arrived within `window`.

    Only the same person counts (phone, e-mail, the messenger id), never a company name alone.
    """
    if window is None:
        return None
    since = now - window
    recent = [m for m in matches if m.kind == "lead" and m.by in _FOLDS_BY and m.created_at and m.created_at >= since]
    return max(recent, key=lambda m: (m.created_at, m.id)) if recent else None
