"""SLA decisions as pure functions: policies, deadlines in working time, the chain, response bands."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadflow.core.lead import CleanLead
from leadflow.core.routing import ManagerState, TeamState
from leadflow.core.rules_text import parse_rules
from leadflow.core.schedule import parse_working_hours
from leadflow.core.sla import first_contact_due, next_owner, policy_for, response_band

KYIV = ZoneInfo("Europe/Kyiv")
RULES = parse_rules(
    """
default_timezone: Europe/Kyiv
teams: [{key: sales, head: head}, {key: vip}]
managers:
  - {key: a, name: Anna, team: sales}
  - {key: b, name: Bohdan, team: sales}
  - {key: c, name: Chrystia, team: sales}
  - {key: head, name: Halyna, team: sales}
  - {key: v, name: Vira, team: vip}
routing:
  rules:
    - {key: all, team: sales, managers: [a, b, c]}
    - {key: big, team: vip, when: {budget: {gte: 100000}}}
sla:
  default: {first_contact: 10m}
  overrides:
    - {rule: big, first_contact: 2h, count: wall_clock, chain: {managers: [v], max_hops: 1, final: head}}
    - {channel: phone, first_contact: 15m}
"""
)
OFFICE = parse_working_hours({"mon-fri": "09:00-18:00"}, "Europe/Kyiv")


def kyiv(*args: int) -> datetime:
    return datetime(*args, tzinfo=KYIV)  # type: ignore[misc]


def lead(channel: str = "web", budget: int | None = None) -> CleanLead:
    return CleanLead(channel=channel, phone="+380671234567", budget=budget)  # type: ignore[arg-type]


def test_policy_layers_default_channel_and_override() -> None:
    assert policy_for(RULES, lead(), "all", "sales").first_contact == timedelta(minutes=10)
    assert policy_for(RULES, lead("chat"), "all", "sales").first_contact == timedelta(minutes=5)
    assert policy_for(RULES, lead("Telegram"), "all", "sales").first_contact == timedelta(minutes=5)
    assert policy_for(RULES, lead("phone"), "all", "sales").first_contact == timedelta(minutes=15)
    vip = policy_for(RULES, lead(), "big", "vip")
    assert (vip.first_contact, vip.count, vip.chain.managers) == (timedelta(hours=2), "wall_clock", ("v",))


@pytest.mark.parametrize(
    ("arrived", "due"),
    [
        (kyiv(2026, 11, 24, 22, 0), kyiv(2026, 11, 25, 9, 10)),  # evening: due 10 minutes after opening
        (kyiv(2026, 11, 24, 17, 55), kyiv(2026, 11, 25, 9, 5)),  # crosses closing time: 5 minutes carry over
        (kyiv(2026, 11, 27, 17, 58), kyiv(2026, 11, 30, 9, 8)),  # Friday evening: Monday morning
        (kyiv(2026, 11, 28, 12, 0), kyiv(2026, 11, 30, 9, 10)),  # Saturday
        (kyiv(2026, 3, 27, 17, 55), kyiv(2026, 3, 30, 9, 5)),  # over the spring DST weekend (29 March)
        (kyiv(2026, 10, 23, 17, 55), kyiv(2026, 10, 26, 9, 5)),  # over the autumn DST weekend (25 October)
    ],
)
def test_deadline_in_working_hours(arrived: datetime, due: datetime) -> None:
    policy = RULES.sla.default
    assert first_contact_due(policy, arrived.astimezone(UTC), OFFICE).astimezone(UTC) == due.astimezone(UTC)


def test_wall_clock_deadline_ignores_hours_and_dst() -> None:
    policy = RULES.sla.default.model_copy(update={"count": "wall_clock", "first_contact": timedelta(hours=2)})
    # 02:30 on the autumn change night: two real hours later the wall clock reads 03:30 (03:00-04:00 happens twice).
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 03:30 EEST
    assert first_contact_due(policy, start, OFFICE) == start + timedelta(hours=2)


def test_response_bands_from_the_seed() -> None:
    t0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert [response_band(t0, t0 + d) for d in (timedelta(minutes=20), timedelta(minutes=21), timedelta(hours=3),
            timedelta(hours=12), timedelta(hours=12, seconds=1))] == ["≤20m", "≤3h", "≤3h", "≤12h", ">12h"]  # fmt: skip


def state(**overrides: dict[str, object]) -> TeamState:
    people = {}
    for i, m in enumerate(RULES.managers, start=1):
        values: dict[str, object] = {"id": i, "key": m.key, "name": m.name, "team": m.team, "capacity": 10,
                                     "open_leads": 0, "hours": OFFICE} | overrides.get(m.key, {})  # fmt: skip
        people[m.key] = ManagerState(**values)  # type: ignore[arg-type]
    return TeamState(people, {})


NOON = kyiv(2026, 11, 24, 12, 0).astimezone(UTC)


def escalate(current: str, hop: int, tried: tuple[str, ...], st: TeamState | None = None, rule: str = "all"):  # type: ignore[no-untyped-def]
    policy = policy_for(RULES, lead(), rule, "sales")
    return next_owner(lead(), RULES, st or state(), NOON, policy=policy, current_key=current, hop=hop, tried=tried,
                      rule_key=rule, team_key="sales", head_key="head")  # fmt: skip


def test_chain_by_strategy_goes_a_b_c_then_head() -> None:
    first = escalate("a", 0, ())
    assert (first.decision.manager_key, first.hop, first.final) == ("b", 1, False)
    assert first.decision.reason.startswith("no first contact by Anna within 10m; hop 1/3; next: Bohdan, round robin")
    second = escalate("b", 1, ("a",))
    assert second.decision.manager_key == "c"
    last = escalate("c", 2, ("a", "b"))
    assert (last.decision.manager_key, last.final) == ("head", True)
    assert "end of the chain: to Halyna, head of the team" in last.decision.reason


def test_chain_skips_people_who_cannot_take_it() -> None:
    result = escalate("a", 0, (), state(b={"absent": True}))
    assert result.decision.manager_key == "c"
    assert "Bohdan absent" in result.decision.reason


def test_explicit_chain_and_max_hops() -> None:
    first = escalate("x", 0, (), rule="big")
    assert first.decision.manager_key == "v" and "next in the chain" in first.decision.reason
    done = escalate("v", 1, ("x",), rule="big")
    assert done.final and done.decision.manager_key == "head"
    assert "all 1 hops of the chain used" in done.decision.reason


def test_no_head_means_the_unassigned_queue_with_a_reason() -> None:
    policy = policy_for(RULES, lead(), "all", "sales")
    result = next_owner(lead(), RULES, state(), NOON, policy=policy, current_key="c", hop=2, tried=("a", "b"),
                        rule_key="all", team_key="sales", head_key=None)  # fmt: skip
    assert not result.decision.assigned and result.final
    assert result.decision.reason.endswith("end of the chain, but the team has no head: unassigned")
