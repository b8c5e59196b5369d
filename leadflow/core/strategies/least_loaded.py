"""Least loaded: whoever has the least open work (leads, their value, or deals, as the target's `load` says)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow.core.strategies.base import Pick, Strategy, Turn

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState
    from leadflow.core.rules import Target

_LOAD_ATTR = {"leads": "open_leads", "value": "open_value", "deals": "open_deals"}
_UNIT = {"leads": "open", "value": "in open value", "deals": "open deals"}


class LeastLoaded(Strategy):
    key = "least_loaded"
    words = "least loaded"

    def inputs(self, m: ManagerState, target: Target) -> dict[str, float | int | str]:
        return {"load": float(getattr(m, _LOAD_ATTR[target.load]))}

    def ranked(self, turn: Turn) -> list[int]:
        candidates = turn.candidates
        return sorted(turn.eligible, key=lambda i: candidates[i].inputs["load"])  # stable: rotation order on ties

    def pick(self, turn: Turn) -> Pick:
        candidates = turn.candidates
        best = min(turn.eligible, key=lambda i: candidates[i].inputs["load"])  # first on ties: the rotation order
        m = turn.pool[best]
        load = candidates[best].inputs["load"]
        how = f"least loaded among {len(turn.eligible)} eligible ({m.name} has {load:g} {_UNIT[turn.target.load]})"
        return Pick(best, how)

    def preference(self, turn: Turn) -> dict[str, float]:
        """The load itself: a batch spreading many leads sees how far apart the managers are, not just the order."""
        return {turn.pool[i].key: float(turn.candidates[i].inputs["load"]) for i in turn.eligible}
