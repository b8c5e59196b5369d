"""The routing policies stored and applied: teams' sticky policy and account matching, managers' `accepts`, on
real SQLite and real PostgreSQL."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from leadflow.core.errors import InvalidInput
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services import people
from leadflow.services.batch import assign_backlog
from leadflow.services.context import Leadflow
from leadflow.services.explain import explain_lead
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.store.tables import assignments, contacts, leads, managers, teams
from leadflow.store.team_state import load_team_state

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday, 12:00 in Kyiv

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, timezone: Europe/Kyiv, sticky: {sticky}, sticky_wait: 15m, match_accounts: true}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 100, vacations: [{from: 2026-11-20, to: 2026-12-05}]}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 100, accepts: {budget: {gte: 1000}}}
  - {key: chrystia, name: Chrystia, team: sales, capacity: 100}
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
"""


def app_with(make_app: Callable[[str], Leadflow], sticky: str) -> Leadflow:
    return make_app(RULES.replace("{sticky}", sticky))


def test_the_rules_file_writes_the_policies_and_routing_reads_them(make_app: Callable[[str], Leadflow]) -> None:
    lf = app_with(make_app, "never")
    with lf.engine.connect() as conn:
        team = conn.execute(select(teams).where(teams.c.key == "sales")).mappings().one()
        assert (team["sticky"], team["sticky_wait_seconds"], team["match_accounts"]) == ("never", 900, True)
        accepts = dict(conn.execute(select(managers.c.key, managers.c.accepts)).all())
        assert accepts == {"anna": None, "bohdan": {"budget": {"gte": 1000}}, "chrystia": None}
        state = load_team_state(conn, ["sales"], ["all"], "Europe/Kyiv")
    assert state.managers["bohdan"].accepts == lf.rules.managers[1].accepts
    small = take_lead(lf, LeadIn(phone="0671234567", budget=500), NOW)
    assert small.manager_key == "chrystia"  # Anna is on vacation, Bohdan takes budgets from 1000
    assert "Bohdan does not accept this lead: budget 500, accepts budget ≥ 1000" in small.reason
    assert take_lead(lf, LeadIn(phone="0671234568", budget=5000), NOW).manager_key == "bohdan"


def test_people_service_creates_and_patches_accepts(make_app: Callable[[str], Leadflow]) -> None:
    lf = app_with(make_app, "available")
    new = people.ManagerIn.model_validate(
        {"key": "dmytro", "name": "Dmytro", "team": "sales", "accepts": {"product": ["credit"], "score": {"lt": 9.5}}}
    )
    assert people.create_manager(lf, new, NOW, who=SYSTEM)["accepts"] == {"product": ["credit"], "score": {"lt": 9.5}}
    patched = people.update_manager(lf, "dmytro", people.ManagerPatch(accepts={"region": "PL"}), NOW, who=SYSTEM)
    assert patched["accepts"] == {"region": "PL"}
    assert people.update_manager(lf, "dmytro", people.ManagerPatch(accepts=None), NOW, who=SYSTEM)["accepts"] is None
    with pytest.raises(InvalidInput, match="unknown lead field 'regon'"):
        people.update_manager(lf, "dmytro", people.ManagerPatch(accepts={"regon": "PL"}), NOW, who=SYSTEM)


def _repeat_of_annas_client(lf: Leadflow) -> str:
    with lf.engine.begin() as conn:
        anna = conn.execute(select(managers.c.id).where(managers.c.key == "anna")).scalar_one()
        conn.execute(contacts.insert().values(name="Ivan", phone="+380671234567", owner_id=anna, created_at=NOW))
    result = take_lead(lf, LeadIn(phone="0671234567", budget=5000), NOW)
    assert [e["type"] for e in get_lead(lf, result.lead_id, who=SYSTEM)["events"]][:2] == [
        "lead.received",
        "lead.duplicate",
    ]
    return f"{result.manager_key}: {result.reason}"


def test_sticky_available_respects_the_owners_vacation(make_app: Callable[[str], Leadflow]) -> None:
    outcome = _repeat_of_annas_client(app_with(make_app, "available"))
    assert outcome.startswith("bohdan: duplicate of existing contact #1")
    assert "; owner Anna is on vacation until 2026-12-05; routed by rules; rule 'all' matched" in outcome


def test_sticky_always_sends_to_the_owner_even_on_vacation(make_app: Callable[[str], Leadflow]) -> None:
    assert _repeat_of_annas_client(app_with(make_app, "always")).endswith("sent to the owner Anna (sticky: always)")


def test_sticky_never_routes_by_the_rules(make_app: Callable[[str], Leadflow]) -> None:
    lf = app_with(make_app, "never")
    outcome = _repeat_of_annas_client(lf)
    assert outcome.startswith("bohdan: ") and "; sticky: never; routed by rules;" in outcome


def test_explain_renders_a_summary_of_many_skipped(make_app: Callable[[str], Leadflow]) -> None:
    many = "\n".join(f"  - {{key: m{i}, name: M{i}, team: sales, absent: true}}" for i in range(12))
    lf = make_app(RULES.replace("{sticky}", "available").replace("routing:", many + "\nrouting:"))
    result = take_lead(lf, LeadIn(phone="0671234567", budget=5000), NOW)
    candidates = explain_lead(lf, result.lead_id, who=SYSTEM)["decisions"][0]["candidates"]
    assert [c["key"] for c in candidates] == ["bohdan", "chrystia", None]
    assert candidates[-1]["name"] == "13 skipped"
    assert candidates[-1]["skipped"]["absent"] == {"count": 12, "names": ["M0", "M1", "M2"]}
    assert candidates[-1]["skipped"]["on vacation"] == {"count": 1, "names": ["Anna"]}


def _backlog_repeat_of_annas_client(lf: Leadflow) -> tuple[str | None, str]:
    """A backlog lead of a client Anna works (an open lead of hers), routed by the batch."""
    with lf.engine.begin() as conn:
        anna = conn.execute(select(managers.c.id).where(managers.c.key == "anna")).scalar_one()
        rows = [
            {"channel": "web", "phone": "+380671234567", "manager_id": anna, "status": "assigned", "budget": 5000},
            {"channel": "web", "phone": "+380671234567", "manager_id": None, "status": "new", "budget": 5000},
        ]
        for row in rows:
            conn.execute(leads.insert().values(**row, utm={}, raw={}, created_at=NOW, updated_at=NOW, sla_hops=0))
        waiting = conn.execute(select(leads.c.id).where(leads.c.status == "new")).scalar_one()
    report = assign_backlog(lf, NOW, who=SYSTEM)
    with lf.engine.connect() as conn:
        reason = conn.execute(
            select(assignments.c.reason).where(assignments.c.lead_id == waiting, assignments.c.kind == "batch")
        ).scalar_one()
    return report.picks.get(waiting), reason


def test_the_batch_keeps_the_owners_vacation_under_sticky_available(make_app: Callable[[str], Leadflow]) -> None:
    pick, reason = _backlog_repeat_of_annas_client(app_with(make_app, "available"))
    assert pick == "bohdan" and reason.startswith("rule 'all' matched")


def test_the_batch_sends_to_the_owner_on_vacation_under_sticky_always(make_app: Callable[[str], Leadflow]) -> None:
    pick, reason = _backlog_repeat_of_annas_client(app_with(make_app, "always"))
    assert (pick, reason) == ("anna", "same client as lead 1; sent to the owner Anna (sticky: always)")


def test_the_batch_routes_by_extra_fields_as_intake_does(make_app: Callable[[str], Leadflow]) -> None:
    rules = RULES.replace("{sticky}", "available").replace(
        "    - {key: all, team: sales, strategy: round_robin}",
        "    - {key: partner, team: sales, managers: [chrystia], when: {extra.partner: acme}}\n"
        "    - {key: all, team: sales, managers: [bohdan], strategy: round_robin}",
    )
    lf = make_app(rules)
    with lf.engine.begin() as conn:
        for i, raw in enumerate(({"partner": "acme"}, {"extra": {"partner": "ACME"}}, {})):
            conn.execute(leads.insert().values(channel="web", phone=f"+38067123456{i}", status="new", budget=5000,
                                               utm={}, raw=raw, created_at=NOW, updated_at=NOW, sla_hops=0))  # fmt: skip
        ids = conn.execute(select(leads.c.id).order_by(leads.c.id)).scalars().all()
    report = assign_backlog(lf, NOW, who=SYSTEM)
    assert [report.picks[i] for i in ids] == ["chrystia", "chrystia", "bohdan"]
