"""What a routing strategy is: rank the eligible managers of a pool, pick one, say why, and price every choice.

The eligibility filter is shared (core.routing decides who may take the lead); a strategy only sees the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from leadflow.core.lead import CleanLead
    from leadflow.core.routing import Candidate, ManagerState
    from leadflow.core.rules import Target, TierBand


@dataclass(slots=True)  # made for every decision: a frozen dataclass's __init__ costs twice as much
class Turn:
    """One decision as a strategy sees it: the pool in rotation order and which of it may take the lead."""

    lead: CleanLead
    target: Target
    pool: list[ManagerState]  # starting just after whoever got the rule's previous lead
    candidates: list[Candidate]  # one per manager of the pool, with the rank inputs this strategy gave
    eligible: list[int]  # indices into pool, in rotation order; never empty
    weights: Mapping[str, float]  # weighted strategies: manager key -> weight; empty for the others
    credit: Mapping[str, float]  # weighted strategies: the rule's credits before this turn


@dataclass(slots=True)  # made for every decision: a frozen dataclass's __init__ costs twice as much
class Pick:
    index: int  # into Turn.pool
    how: str  # "least loaded among 3 eligible (Olena has 2 open)"
    credits: dict[str, float] | None = None  # the rule's credits after this pick (weighted strategies)


class Strategy:
    """One way of choosing among eligible managers. Subclass, set `key` and `words`, and put it in its own module
    under leadflow/core/strategies/: the registry finds it there.

    Ties always go to whoever comes first in the rotation, so equal managers take turns; every pick moves the rule's
    rotation to the one picked, and a weighted strategy also carries the credits its pick returns.
    """

    key: ClassVar[str]
    words: ClassVar[str]  # how the reason names it: "round robin"

    def weights(self, pool: list[ManagerState]) -> dict[str, float]:
        """Weighted strategies: each manager's share; the others have none."""
        return {}

    def inputs(self, m: ManagerState, target: Target) -> dict[str, float | int | str]:
        """What this strategy ranks the manager on, shown with the candidate: it depends on the manager alone (a
        batch keeps each manager's candidate record while the manager's state stays the same)."""
        return {}

    def ranked(self, turn: Turn) -> list[int]:
        """The eligible, best first (ties in rotation order)."""
        return list(turn.eligible)

    def pick(self, turn: Turn) -> Pick:
        """The first of ranked(), with the sentence that explains it."""
        return Pick(self.ranked(turn)[0], f"{self.words} among {len(turn.eligible)} eligible")

    def preference(self, turn: Turn) -> dict[str, float]:
        """A cost per eligible manager key, lower is better, for an assignment that weighs many leads at once:
        by default the position in ranked() (0 for the one pick() would take)."""
        return {turn.pool[i].key: float(position) for position, i in enumerate(self.ranked(turn))}


def tier_band(lead: CleanLead, bands: tuple[TierBand, ...]) -> TierBand | None:
    """The first band the lead reaches by score or win probability; bands are listed best first."""
    for band in bands:
        by_score = band.min_score is not None and lead.score is not None and lead.score >= band.min_score
        by_probability = (
            band.min_probability is not None
            and lead.win_probability is not None
            and lead.win_probability >= band.min_probability
        )
        if by_score or by_probability:
            return band
    return None
