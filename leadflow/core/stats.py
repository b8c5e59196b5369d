"""The statistics the reports use, each defined once (docs/reports.md quotes these definitions).

Pure functions of numbers: no clock, no database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
Z80 = 1.281552  # of a two-sided 80% interval: the forecast's range (its 10th to 90th percentile)


def median(values: Sequence[float]) -> float | None:
    """The middle value; of an even count, the mean of the two middle ones. None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    half = len(ordered) // 2
    return float(ordered[half]) if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value at or below which at least p% of the values lie (p90 of
    ten values is the 9th smallest). None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return float(ordered[rank - 1])


def share(part: float, whole: float) -> float | None:
    """part / whole, None when the whole is nothing (a share of no leads is unknown, not zero)."""
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval of a proportion: honest at small counts and near 0% or 100%, where the normal
    approximation is not."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(centre - half, 0.0), min(centre + half, 1.0))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """The population standard deviation over the mean: 0 is perfectly even. None when the mean is 0."""
    m = mean(values)
    if not m:
        return None
    variance = sum((v - m) ** 2 for v in values) / len(values)
    return math.sqrt(variance) / m


def gini(values: Sequence[float]) -> float | None:
    """The Gini coefficient: 0 when everyone has the same, towards 1 when one has everything. None when the total
    is 0."""
    total = sum(values)
    if not values or total <= 0:
        return None
    ordered = sorted(values)
    n = len(ordered)
    weighted = sum((i + 1) * v for i, v in enumerate(ordered))
    return (2 * weighted) / (n * total) - (n + 1) / n


def spread(values: Sequence[float]) -> float | None:
    """max - min."""
    return max(values) - min(values) if values else None
