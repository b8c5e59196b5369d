"""Qualification: criteria points (1-5 each), their total, the temperature and who owns leads that warm.

Pure: the rules and the lead in, a Qualification with its reasons out. The predictive model's probability, when
there is one, is passed in; temperature bands may use it alongside the points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from leadflow.core.lead import CleanLead
from leadflow.core.rules import TEMPERATURES, Scoring


@dataclass(frozen=True, slots=True)
class CriterionScore:
    key: str
    label: str
    points: int
    why: str


@dataclass(frozen=True, slots=True)
class Qualification:
    score: int | None
    criteria: tuple[CriterionScore, ...]
    temperature: str | None
    department: str | None
    window: timedelta | None
    reason: str

    def apply(self, lead: CleanLead, probability: float | None) -> CleanLead:
        """The lead with its qualification, so routing rules and SLA policies can use it."""
        return replace(lead, score=self.score, temperature=self.temperature, department=self.department,
                       win_probability=probability)  # fmt: skip

    def detail(self) -> list[dict[str, object]]:
        return [{"key": c.key, "label": c.label, "points": c.points, "why": c.why} for c in self.criteria]


NOT_SCORED = Qualification(None, (), None, None, None, "not scored")


def qualify(lead: CleanLead, scoring: Scoring, probability: float | None = None) -> Qualification:
    """Points per criterion, their sum, and the warmest temperature the points, probability or signals reach."""
    if not scoring.enabled or (not scoring.criteria and probability is None and not scoring.signals):
        return NOT_SCORED
    parts = []
    for criterion in scoring.criteria:
        label = criterion.label or criterion.key
        hit = next((p for p in criterion.points if p.when.matches(lead)), None)
        if hit is None:
            parts.append(CriterionScore(criterion.key, label, criterion.default, "no line matched"))
        else:
            why = hit.why or hit.when.describe(lead)
            parts.append(CriterionScore(criterion.key, label, hit.points, why))
    total = sum(p.points for p in parts) if parts else None
    band = None
    for candidate in sorted(scoring.temperatures, key=lambda b: -TEMPERATURES.index(b.temperature)):
        by_points = total is not None and total >= candidate.min_score
        by_probability = (
            candidate.min_probability is not None
            and probability is not None
            and probability >= candidate.min_probability
        )
        if by_points or by_probability:
            band = candidate
            break
    why_band = f"score {total}" if band is not None and total is not None and total >= band.min_score else (
        f"win probability {probability:.0%}" if band is not None and probability is not None else "")  # fmt: skip
    for signal in scoring.signals:
        if signal.when.matches(lead) and (
            band is None or TEMPERATURES.index(signal.at_least) > TEMPERATURES.index(band.temperature)
        ):
            band = next(b for b in scoring.temperatures if b.temperature == signal.at_least)
            why_band = f"signal: {signal.why or signal.when.describe(lead)}"
    points_text = ", ".join(f"{p.label} {p.points}" for p in parts)
    reason = f"{total} points ({points_text})" if parts else "no criteria"
    if band is not None:
        reason += f"; {band.temperature} by {why_band}; owned by {band.department}"
    return Qualification(
        score=total,
        criteria=tuple(parts),
        temperature=band.temperature if band else None,
        department=band.department if band else None,
        window=band.window if band else None,
        reason=reason,
    )
