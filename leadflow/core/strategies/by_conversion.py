"""By conversion: weighted round robin with each manager's smoothed conversion as the weight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow.core.strategies._weighted import Weighted

if TYPE_CHECKING:
    from leadflow.core.routing import ManagerState


class ByConversion(Weighted):
    key = "by_conversion"
    words = "by conversion"
    what = "conversion"

    def weight_of(self, m: ManagerState) -> float:
        return m.smoothed_conversion
