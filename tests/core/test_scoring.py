"""Criteria points, temperature bands and signals: pure, with the reasons a person reads."""

from datetime import timedelta
from decimal import Decimal

from leadflow.core.lead import CleanLead
from leadflow.core.rules_text import parse_rules
from leadflow.core.scoring import qualify

RULES = parse_rules("""
scoring:
  criteria:
    - key: fit
      label: Fit to the ideal client
      points:
        - {when: {region: [UA, PL], budget: {gte: 50000}}, points: 5, why: target region and budget}
        - {when: {region: UA}, points: 3}
      default: 1
    - key: readiness
      label: Readiness to buy
      points:
        - {when: {message: {contains: [calculate, price, розрахувати, ціна]}}, points: 5, why: asks for a price}
        - {when: {message: {contains: [guide, download]}}, points: 1, why: wants the guide}
      default: 2
    - key: channel
      label: Channel
      points:
        - {when: {source: referral}, points: 5}
        - {when: {utm_medium: cpc}, points: 4}
        - {when: {source: blog}, points: 1}
      default: 2
    - key: stage
      label: Stage of need
      points:
        - {when: {product: [credit, leasing]}, points: 4}
      default: 2
  signals:
    - {when: {budget: {gte: 1000000}}, at_least: red_hot, why: a very large deal}
""")


def lead(**fields: object) -> CleanLead:
    return CleanLead(channel="web", phone="+380671234567", **fields)  # type: ignore[arg-type]


def test_points_per_criterion_their_total_and_the_reasons() -> None:
    q = qualify(lead(region="UA", budget=Decimal(80000), message="Please calculate the price", source="referral",
                     product="leasing"), RULES.scoring)  # fmt: skip
    assert [(c.key, c.points, c.why) for c in q.criteria] == [
        ("fit", 5, "target region and budget"),
        ("readiness", 5, "asks for a price"),
        ("channel", 5, "source=referral"),
        ("stage", 4, "product=leasing"),
    ]
    assert q.score == 19 and q.temperature == "red_hot" and q.department == "vip" and q.window == timedelta(hours=2)
    assert q.reason == ("19 points (Fit to the ideal client 5, Readiness to buy 5, Channel 5, Stage of need 4); "
                        "red_hot by score 19; owned by vip")  # fmt: skip


def test_the_seed_bands_cold_warm_hot() -> None:
    cold = qualify(lead(message="download the guide", source="blog"), RULES.scoring)
    assert (cold.score, cold.temperature, cold.department, cold.window) == (5, "cold", "marketing", timedelta(days=30))
    warm = qualify(lead(region="UA", utm={"utm_medium": "cpc"}), RULES.scoring)
    assert (warm.score, warm.temperature, warm.window) == (11, "warm", timedelta(days=7))
    hot = qualify(lead(region="UA", message="ціна?", product="credit"), RULES.scoring)
    assert (hot.score, hot.temperature, hot.window) == (14, "hot", timedelta(days=3))


def test_a_signal_lifts_the_temperature_whatever_the_points() -> None:
    q = qualify(lead(budget=Decimal(2_000_000), source="blog"), RULES.scoring)
    assert q.score == 6 and q.temperature == "red_hot"
    assert "red_hot by signal: a very large deal" in q.reason


def test_probability_can_warm_a_lead_and_nothing_is_scored_without_criteria() -> None:
    rules = parse_rules("""
scoring:
  temperatures:
    - {temperature: hot, min_score: 100, min_probability: 0.7, window: 1d, department: sales}
    - {temperature: cold, min_score: 0, window: 30d, department: marketing}
""")
    assert qualify(lead(), rules.scoring, probability=0.8).temperature == "hot"
    assert qualify(lead(), rules.scoring, probability=0.2).temperature is None  # no points at all: no band by score
    assert qualify(lead(), parse_rules("{}").scoring).temperature is None


def test_scoring_can_be_switched_off() -> None:
    rules = RULES.model_copy(update={"scoring": RULES.scoring.model_copy(update={"enabled": False})})
    assert qualify(lead(region="UA"), rules.scoring).score is None
