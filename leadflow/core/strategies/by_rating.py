"""By rating: the best-rated eligible manager (70% conversion, 30% fast first contacts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow.core.strategies.base import Pick, Strategy, Turn

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState
    from leadflow.core.rules import Target


class ByRating(Strategy):
    key = "by_rating"
    words = "by rating"

    def inputs(self, m: ManagerState, target: Target) -> dict[str, float | int | str]:
        return {"rating": m.rating}

    def ranked(self, turn: Turn) -> list[int]:
        candidates = turn.candidates
        return sorted(turn.eligible, key=lambda i: -float(candidates[i].inputs["rating"]))  # stable: rotation on ties

    def pick(self, turn: Turn) -> Pick:
        candidates = turn.candidates
        best = max(turn.eligible, key=lambda i: candidates[i].inputs["rating"])  # first on ties: the rotation order
        rating = candidates[best].inputs["rating"]
        return Pick(best, f"by rating among {len(turn.eligible)} eligible ({turn.pool[best].name} rated {rating:g})")

    def preference(self, turn: Turn) -> dict[str, float]:
        """100 minus the rating: the better rated, the cheaper."""
        return {turn.pool[i].key: 100.0 - float(turn.candidates[i].inputs["rating"]) for i in turn.eligible}
