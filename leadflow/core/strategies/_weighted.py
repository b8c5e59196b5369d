"""Smooth weighted round robin, shared by the strategies that weigh managers (by weight, by conversion)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from leadflow.core.strategies.base import Pick, Strategy, Turn

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState
    from leadflow.core.rules import Target


def smooth_weighted(
    eligible: list[ManagerState], weights: Mapping[str, float], credits: Mapping[str, float]
) -> tuple[ManagerState, dict[str, float]]:
    """Each turn everyone gains their weight, the richest is picked and pays the total.

    Over time each manager gets leads in proportion to their weight, interleaved rather than in runs.
    """
    new = dict(credits)
    total = 0.0
    for m in eligible:
        weight = weights[m.key]
        new[m.key] = new.get(m.key, 0.0) + weight
        total += weight
    pick = eligible[0]
    best = new[pick.key]
    for m in eligible:  # the first of the richest: the rotation order on ties
        if new[m.key] > best:
            pick, best = m, new[m.key]
    new[pick.key] -= total
    # Only the eligible's credits moved; the others keep the (rounded) values they were stored with.
    for m in eligible:
        new[m.key] = round(new[m.key], 6)
    return pick, new


class Weighted(Strategy):
    what = "weight"  # how the reason names the weight

    def inputs(self, m: ManagerState, target: Target) -> dict[str, float | int | str]:
        # The weight alone: it is the manager's share. The credit is the rotation's running state, which moves on
        # every turn; the rule keeps it (rr_pointers), and the pick's sentence says whose weight won.
        return {"weight": round(self.weight_of(m), 4)}

    def weight_of(self, m: ManagerState) -> float:
        """The manager's weight under this strategy."""
        raise NotImplementedError

    def weights(self, pool: list[ManagerState]) -> dict[str, float]:
        weight_of = self.weight_of
        return {m.key: weight_of(m) for m in pool}

    def ranked(self, turn: Turn) -> list[int]:
        # By credit after this turn's gain, richest first; sorted() is stable: rotation order on ties.
        gain = {i: turn.credit.get(turn.pool[i].key, 0.0) + turn.weights[turn.pool[i].key] for i in turn.eligible}
        return sorted(turn.eligible, key=lambda i: -gain[i])

    def pick(self, turn: Turn) -> Pick:
        pool = turn.pool
        eligible = [pool[i] for i in turn.eligible]
        chosen, credits = smooth_weighted(eligible, turn.weights, turn.credit)
        index = next(i for i in turn.eligible if pool[i] is chosen)  # by identity: == compares every field
        weight = turn.weights[chosen.key]
        how = f"{self.words} among {len(eligible)} eligible ({chosen.name}'s {self.what} {weight:.2f})"
        return Pick(index, how, credits)
