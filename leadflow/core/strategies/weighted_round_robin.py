"""Weighted round robin: each manager's share of leads follows their weight, interleaved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow.core.strategies._weighted import Weighted

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState


class WeightedRoundRobin(Weighted):
    key = "weighted_round_robin"
    words = "weighted round robin"

    def weight_of(self, m: ManagerState) -> float:
        return float(m.weight)
