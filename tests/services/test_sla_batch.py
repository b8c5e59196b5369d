"""A round of escalations written as one batch leaves exactly the rows that one escalation per round leaves.

escalate_due decides a whole batch on one in-memory team state and writes it with one statement per table; here
the same leads go through the same chains once with limit=1 (the state read afresh from the database for every
escalation) and once with everything due in one round, on real SQLite and PostgreSQL, and every table is compared.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, text, update

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import deals, leads, managers, metadata
from leadflow.store.team_state import apply_rules_people

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

# Two teams, each with its own chain and head; one rotates by round robin, the other by weights (credits kept in
# the pointer). Budgets make the value-weighted load move; emails and chats put two to three messages per move.
TWO_TEAMS = """
default_timezone: Europe/Kyiv
default_language: uk
teams:
  - {key: sales, name: Sales, head: head, telegram_chat_id: "-100500"}
  - {key: north, name: North, head: boss, telegram_chat_id: "-100600"}
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.test, languages: [uk]}
  - {key: bohdan, name: Bohdan, team: sales, email: bohdan@example.test, languages: [ru]}
  - {key: chrystia, name: Chrystia, team: sales, telegram_chat_id: "701", languages: [en]}
  - {key: dmytro, name: Dmytro, team: sales, email: dmytro@example.test}
  - {key: head, name: Halyna, team: sales, email: head@example.test, languages: [uk]}
  - {key: olena, name: Olena, team: north, email: olena@example.test, weight: 3}
  - {key: petro, name: Petro, team: north, telegram_chat_id: "702", weight: 1}
  - {key: roman, name: Roman, team: north, email: roman@example.test, weight: 2}
  - {key: boss, name: Bohdana, team: north, email: boss@example.test}
routing:
  rules:
    - {key: leasing, team: north, managers: [olena, petro, roman], strategy: weighted_round_robin,
       when: {product: leasing}}
    - {key: all, team: sales, managers: [anna, bohdan, chrystia, dmytro], strategy: round_robin}
sla:
  default: {first_contact: 2s, count: wall_clock, chain: {max_hops: 3}}
"""
LEADS = 24


def build(engine: Engine) -> Leadflow:
    """The rules' teams and managers written at T0 (not at the wall clock), so two runs give the same rows."""
    rules = parse_rules(TWO_TEAMS, "test-rules.yaml")
    with engine.begin() as conn:
        apply_rules_people(conn, rules, T0)
    return Leadflow(engine=engine, rules=rules)


def wipe(engine: Engine) -> None:
    """Every table empty and every id counter back at 1, as a fresh database."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
            if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
                conn.execute(text("DELETE FROM sqlite_sequence"))


def fill(lf: Leadflow) -> None:
    """Leads for both teams, a tenth of a second apart (so their deadlines have one order), some with a deal."""
    for i in range(LEADS):
        lead = LeadIn(name=f"Client {i}", phone=f"+38067{i:07d}", product="leasing" if i % 3 == 0 else "credit",
                      budget=Decimal(1000 + 250 * i) if i % 4 else None)  # fmt: skip
        taken = take_lead(lf, lead, T0 + timedelta(seconds=i / 10))
        if i % 5 == 1:  # an open deal of the owner, which goes with the lead when it moves
            with lf.engine.begin() as conn:
                owner = conn.execute(select(leads.c.manager_id).where(leads.c.id == taken.lead_id)).scalar_one()
                conn.execute(deals.insert().values(lead_id=taken.lead_id, manager_id=owner, title=f"Deal {i}",
                                                   amount=Decimal(500), stage="open", created_at=T0))  # fmt: skip
                conn.execute(update(managers).where(managers.c.id == owner)
                             .values(open_deals=managers.c.open_deals + 1))  # fmt: skip


def run_chains(lf: Leadflow, limit: int) -> list[int]:
    """Every deadline along the chains, round after round; returns how many leads moved at each step."""
    moved = []
    for step in range(1, 6):
        now = T0 + timedelta(seconds=30 * step)
        if step == 2:
            set_status(lf, 3, "lost", now - timedelta(seconds=1), who=SYSTEM)  # its clock stops: no timer any more
            record_contact(lf, 5, owner_of(lf, 5), "call", "connected", now - timedelta(seconds=1), who=SYSTEM)
        total = 0
        while (n := escalate_due(lf, now, limit=limit)) > 0:
            assert n <= limit
            total += n
        moved.append(total)
    return moved


def owner_of(lf: Leadflow, lead_id: int) -> str:
    with lf.engine.connect() as conn:
        query = select(managers.c.key).join(leads, leads.c.manager_id == managers.c.id).where(leads.c.id == lead_id)
        return str(conn.execute(query).scalar_one())


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for t in metadata.sorted_tables if t.name != "instance"}  # fmt: skip  # its secret is made anew


def test_a_batch_of_escalations_writes_the_same_rows_as_one_at_a_time(engine: Engine) -> None:
    lf = build(engine)
    fill(lf)
    one_by_one = run_chains(lf, limit=1)
    single = snapshot(engine)

    wipe(engine)
    lf = build(engine)
    fill(lf)
    batched = run_chains(lf, limit=100)
    together = snapshot(engine)

    # Every lead misses the first deadline; then the lost one and the contacted one drop out. North's chain (three
    # managers) ends with its head at the third move, sales' (four) at the fourth.
    north = sum(1 for i in range(LEADS) if i % 3 == 0)
    assert one_by_one == batched == [LEADS, LEADS - 2, LEADS - 2, LEADS - 2 - north, 0]
    for name in single:
        assert together[name] == single[name], f"table {name} differs"
    assert len(single["outbox"]) > 3 * LEADS and len(single["events"]) > 4 * LEADS
    with engine.connect() as conn:
        owners = conn.execute(select(deals.c.manager_id, leads.c.manager_id).join(leads, leads.c.id == deals.c.lead_id))
        pairs = owners.all()
    assert len(pairs) == 5 and all(deal == lead for deal, lead in pairs), "the deals went with their leads"
