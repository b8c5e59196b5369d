"""Round robin: the next eligible manager after whoever got the rule's previous lead."""

from __future__ import annotations

from leadflow.core.strategies.base import Strategy


class RoundRobin(Strategy):
    key = "round_robin"
    words = "round robin"
