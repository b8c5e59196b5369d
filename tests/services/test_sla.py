"""The first-contact chain through the services, on real SQLite and PostgreSQL, with a clock the test moves."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from leadflow.core.errors import Conflict, InvalidInput
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead, set_status
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import managers, outbox, timers
from tests.support import SLA_TEAM

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(SLA_TEAM)


def outbox_by_recipient(lf: Leadflow) -> dict[str, list[str]]:
    with lf.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.recipient, outbox.c.payload).order_by(outbox.c.id)).all()
    got: dict[str, list[str]] = {}
    for recipient, payload in rows:
        got.setdefault(recipient, []).append(payload["event"])
    return got


def test_a_b_c_then_head_each_notified_once_with_reasons_in_order(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    assert lead.manager_key == "anna"
    assert escalate_due(lf, at(1.9)) == 0  # not yet
    assert escalate_due(lf, at(2.0)) == 1
    assert get_lead(lf, lead.lead_id, who=SYSTEM)["manager_key"] == "bohdan"
    assert escalate_due(lf, at(3.0)) == 0  # Bohdan has his own 2 seconds, from 2.0
    assert escalate_due(lf, at(4.1)) == 1
    assert escalate_due(lf, at(6.2)) == 1
    assert escalate_due(lf, at(600)) == 0  # the head of the team is the end: nothing more moves
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    assert detail["manager_key"] == "head" and detail["sla_state"] == "exhausted" and detail["sla_hops"] == 3
    moves = [(e["type"], e["data"].get("reason")) for e in detail["events"] if e["type"] != "lead.received"]
    assert moves == [
        ("lead.assigned", "rule 'all' matched any lead; round robin among 3 eligible"),
        ("lead.escalated", "no first contact by Anna within 2s; hop 1/3; next: Bohdan, round robin among 2 eligible"),
        ("lead.escalated", "no first contact by Bohdan within 2s; hop 2/3; next: Chrystia, round robin among 1 eligible"),
        ("lead.chain_exhausted", "no first contact by Chrystia within 2s; hop 3/3; everyone in the chain has had it; "
         "end of the chain: to Halyna, head of the team"),
    ]  # fmt: skip
    assert [a["kind"] for a in detail["assignments"]] == ["initial", "escalation", "escalation", "escalation"]
    assert outbox_by_recipient(lf) == {
        "anna@example.test": ["lead.assigned"],
        "bohdan@example.test": ["lead.escalated"],
        "chrystia@example.test": ["lead.escalated"],
        "head@example.test": ["lead.chain_exhausted"],
        "-100500": ["lead.escalated", "lead.escalated", "lead.chain_exhausted"],  # the team chat
    }
    with lf.engine.connect() as conn:
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
        assert conn.execute(select(func.count()).select_from(timers)).scalar_one() == 0
    assert loads == {"anna": 0, "bohdan": 0, "chrystia": 0, "head": 1}


def test_messages_are_in_each_managers_language(lf: Leadflow) -> None:
    take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    escalate_due(lf, at(2))
    escalate_due(lf, at(4))
    with lf.engine.connect() as conn:
        bodies = dict(conn.execute(select(outbox.c.recipient, outbox.c.body)).all())
    assert "Зв'яжися з клієнтом" in bodies["anna@example.test"]  # Ukrainian
    assert "не успел обработать лида? Забирай, иначе через 0 мин" not in bodies["bohdan@example.test"]
    assert "Коллега (Anna) не успел обработать лида?" in bodies["bohdan@example.test"]  # Russian
    assert "Your colleague Bohdan did not get to this lead?" in bodies["chrystia@example.test"]  # English


def test_contact_by_b_within_its_window_stops_the_chain(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    escalate_due(lf, at(2))
    with pytest.raises(Conflict, match="Chrystia has never owned lead 1: it is with Bohdan"):
        record_contact(lf, lead.lead_id, "chrystia", "call", "connected", at(2.5), who=SYSTEM)
    attempt = record_contact(lf, lead.lead_id, "bohdan", "call", "no_answer", at(2.6), who=SYSTEM)
    assert attempt["first_contact"] is False and attempt["sla_state"] == "running"
    done = record_contact(lf, lead.lead_id, "bohdan", "call", "connected", at(3.5), who=SYSTEM)
    assert done == {"id": 1, "first_contact": True, "sla_state": "met", "response_band": "≤20m",
                    "response_seconds": 3, "status": "contacted", "late": False, "covered": []}  # fmt: skip
    assert escalate_due(lf, at(100)) == 0
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    assert detail["manager_key"] == "bohdan" and detail["status"] == "contacted"
    assert [e["type"] for e in detail["events"]][-2:] == ["lead.contact_attempt", "lead.contacted"]


def test_bad_contacts_are_refused_and_change_nothing(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(phone="0671234567"), T0)
    with pytest.raises(InvalidInput, match="'fax' is not a contact kind"):
        record_contact(lf, lead.lead_id, "anna", "fax", "sent", at(1), who=SYSTEM)
    with pytest.raises(InvalidInput, match="a call can end as connected, no_answer, busy, wrong_number, not 'sent'"):
        record_contact(lf, lead.lead_id, "anna", "call", "sent", at(1), who=SYSTEM)
    with pytest.raises(InvalidInput, match="manager 'zoe' does not exist"):
        record_contact(lf, lead.lead_id, "zoe", "call", "connected", at(1), who=SYSTEM)
    assert get_lead(lf, lead.lead_id, who=SYSTEM)["sla_state"] == "running"
    assert escalate_due(lf, at(2)) == 1


def test_closing_a_lead_stops_its_clock(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(phone="0671234567"), T0)
    set_status(lf, lead.lead_id, "lost", at(1), who=SYSTEM)
    assert escalate_due(lf, at(10)) == 0
    assert get_lead(lf, lead.lead_id, who=SYSTEM)["sla_state"] == "stopped"


def test_deadline_in_working_hours_from_intake(make_app: Callable[[str], Leadflow]) -> None:
    text = SLA_TEAM.replace("first_contact: 2s, count: wall_clock", "first_contact: 10m").replace(
        "{key: sales, name: Sales,", "{key: sales, name: Sales, hours: {mon-fri: '09:00-18:00'},"
    )
    lf = make_app(text)
    friday_evening = datetime(2026, 11, 27, 15, 58, tzinfo=UTC)  # 17:58 in Kyiv
    lead = take_lead(lf, LeadIn(phone="0671234567"), datetime(2026, 11, 27, 9, 0, tzinfo=UTC))  # 11:00, open
    late = take_lead(lf, LeadIn(phone="0501234567"), friday_evening)
    assert get_lead(lf, lead.lead_id, who=SYSTEM)["sla_due_at"] == datetime(2026, 11, 27, 9, 10, tzinfo=UTC)
    assert get_lead(lf, late.lead_id, who=SYSTEM)["sla_due_at"] == datetime(
        2026, 11, 30, 7, 8, tzinfo=UTC
    )  # Monday 09:08 Kyiv
    assert escalate_due(lf, datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) == 1  # only the first one is due by Sunday


def test_a_timer_is_acted_on_once_even_if_asked_twice(lf: Leadflow) -> None:
    for i in range(5):
        take_lead(lf, LeadIn(phone=f"06700000{i:02d}"), T0)
    assert escalate_due(lf, at(2), limit=3) == 3
    assert escalate_due(lf, at(2), limit=3) == 2
    assert escalate_due(lf, at(2)) == 0


def test_the_teams_own_message_text_is_what_the_next_manager_gets(make_app: Callable[[str], Leadflow]) -> None:
    own = (
        SLA_TEAM
        + """
templates:
  lead.escalated:
    ru: |
      Лид {{ lead.id }} твой
      {{ previous_manager_name }} не успел. Звони {{ lead.phone }} сейчас!
"""
    )
    lf = make_app(own)
    take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    escalate_due(lf, at(2))
    with lf.engine.connect() as conn:
        subject, body = conn.execute(
            select(outbox.c.subject, outbox.c.body).where(outbox.c.recipient == "bohdan@example.test")
        ).one()
    assert subject == "Лид 1 твой"
    assert body == "Anna не успел. Звони +380671234567 сейчас!"
