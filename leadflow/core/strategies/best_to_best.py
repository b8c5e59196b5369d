"""Best to best: the lead's score band names the manager tiers that may take it (the filter does that part);
among them, round robin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow.core.strategies.base import Pick, Strategy, Turn, tier_band

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState
    from leadflow.core.rules import Target


class BestToBest(Strategy):
    key = "best_to_best"
    words = "best to best"

    def inputs(self, m: ManagerState, target: Target) -> dict[str, float | int | str]:
        return {"tier": m.tier}

    def pick(self, turn: Turn) -> Pick:
        lead = turn.lead
        band = tier_band(lead, turn.target.tiers)
        band_text = f"score {lead.score} → tier {'/'.join(map(str, band.tiers))}" if band else "no score band"
        return Pick(turn.eligible[0], f"best to best ({band_text}), round robin among {len(turn.eligible)} eligible")
