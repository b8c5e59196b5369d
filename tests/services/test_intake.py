"""Intake through the service layer, on real SQLite and real PostgreSQL."""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from leadflow.core.errors import Conflict
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead, restore_lead, set_status
from leadflow.store.tables import companies, contacts, events, leads, managers
from tests.support import THREE_MANAGERS

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


def count(lf: Leadflow, table: object) -> int:
    with lf.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def manager_id(lf: Leadflow, key: str) -> int:
    with lf.engine.connect() as conn:
        return int(conn.execute(select(managers.c.id).where(managers.c.key == key)).scalar_one())


def test_repeated_delivery_returns_the_first_lead_and_creates_nothing(lf: Leadflow) -> None:
    first = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), NOW, idempotency_key="form-42")
    events_after_first = count(lf, events)
    again = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), NOW, idempotency_key="form-42")
    assert (again.lead_id, again.created, again.manager_key) == (first.lead_id, False, first.manager_key)
    by_external = take_lead(lf, LeadIn(channel="crm", external_id="A-1", phone="0501234567"), NOW)
    repeat = take_lead(lf, LeadIn(channel="crm", external_id="A-1", phone="0501234567"), NOW)
    assert repeat.lead_id == by_external.lead_id and not repeat.created
    assert take_lead(lf, LeadIn(channel="other", external_id="A-1", phone="0501234568"), NOW).created
    assert count(lf, leads) == 3
    assert count(lf, events) == events_after_first + 2 * 2  # received and assigned, for each new lead


def test_duplicate_by_phone_written_differently_goes_to_the_existing_owner(lf: Leadflow) -> None:
    owner = manager_id(lf, "chrystia")
    with lf.engine.begin() as conn:
        conn.execute(contacts.insert().values(name="Ivan", phone="+380671234567", owner_id=owner, created_at=NOW))
    result = take_lead(lf, LeadIn(name="Ivan again", phone="+380 (67) 123-45-67"), NOW)
    assert result.manager_key == "chrystia"
    assert result.reason.startswith("duplicate of existing contact #1 by phone +380671234567, owned by Chrystia")
    detail = get_lead(lf, result.lead_id, who=SYSTEM)
    assert detail["contact_id"] == 1
    assert [e["type"] for e in detail["events"]] == ["lead.received", "lead.duplicate", "lead.assigned"]
    # The same person writing again from the short local form goes to the same owner.
    assert take_lead(lf, LeadIn(phone="0671234567"), NOW).manager_key == "chrystia"


def test_duplicate_of_an_open_lead_by_email_goes_to_its_manager(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(THREE_MANAGERS + "dedupe: {fold_window: off}\n")
    first = take_lead(lf, LeadIn(email="Olga@Example.COM"), NOW)
    second = take_lead(lf, LeadIn(email="olga@example.com", phone="0931112233"), NOW)
    assert second.manager_key == first.manager_key
    assert get_lead(lf, second.lead_id, who=SYSTEM)["duplicate_of_id"] == first.lead_id


def test_company_name_matched_fuzzily_to_its_owner(lf: Leadflow) -> None:
    owner = manager_id(lf, "bohdan")
    with lf.engine.begin() as conn:
        conn.execute(companies.insert().values(name="ТОВ «Ромашка-Плюс»", name_key="ромашка плюс", block_key="ром",
                                               owner_id=owner, created_at=NOW))  # fmt: skip
    result = take_lead(lf, LeadIn(company="Ромашка Плюс ТОВ", phone="0991234567"), NOW)
    assert result.manager_key == "bohdan"
    assert "company name 'ТОВ «Ромашка-Плюс»' (100%)" in result.reason


def test_absent_owner_falls_back_to_rules_and_says_so(lf: Leadflow) -> None:
    owner = manager_id(lf, "head")
    with lf.engine.begin() as conn:
        conn.execute(contacts.insert().values(phone="+380671234567", owner_id=owner, created_at=NOW))
        conn.execute(managers.update().where(managers.c.key == "head").values(absent=True))
    result = take_lead(lf, LeadIn(phone="0671234567"), NOW)
    assert result.manager_key == "anna"
    assert "owner Head of sales is absent; routed by rules" in result.reason


def test_junk_is_kept_counted_and_restorable(lf: Leadflow) -> None:
    junk = take_lead(lf, LeadIn(name="Spam", email="me@ourcompany.ua"), NOW)
    assert junk.status == "junk" and junk.manager_key is None
    assert count(lf, leads) == 1
    restored = restore_lead(lf, junk.lead_id, NOW, who=SYSTEM)
    assert restored["status"] == "assigned"
    detail = get_lead(lf, junk.lead_id, who=SYSTEM)
    assert detail["manager_key"] == "anna"
    assert [e["type"] for e in detail["events"]] == ["lead.received", "lead.junked", "lead.restored", "lead.assigned"]
    assert (
        detail["events"][2]["data"]["was"] == "e-mail me@ourcompany.ua is from the company's own domain ourcompany.ua"
    )
    with pytest.raises(Conflict):
        restore_lead(lf, junk.lead_id, NOW, who=SYSTEM)


def test_round_robin_even_across_three_over_300_leads_and_load_follows(lf: Leadflow) -> None:
    got: Counter[str | None] = Counter()
    for i in range(300):
        got[take_lead(lf, LeadIn(phone=f"+38067{i:07d}"), NOW).manager_key] += 1
    assert got == {"anna": 100, "bohdan": 100, "chrystia": 100}
    with lf.engine.connect() as conn:
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    assert loads == {"anna": 100, "bohdan": 100, "chrystia": 100, "head": 0}


def test_manager_at_capacity_is_skipped_and_closing_a_lead_frees_a_slot(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        conn.execute(managers.update().where(managers.c.key == "anna").values(capacity=1))
    first = take_lead(lf, LeadIn(phone="0670000001"), NOW)
    assert first.manager_key == "anna"
    others = [take_lead(lf, LeadIn(phone=f"067000000{i}"), NOW) for i in range(2, 6)]
    assert all(r.manager_key != "anna" for r in others)
    assert "Anna at capacity 1/1" in others[-1].reason
    set_status(lf, first.lead_id, "lost", NOW, who=SYSTEM)
    picked = [take_lead(lf, LeadIn(phone=f"068000000{i}"), NOW).manager_key for i in range(3)]
    assert "anna" in picked


def test_off_shift_manager_is_skipped(make_app: Callable[[str], Leadflow]) -> None:
    text = THREE_MANAGERS.replace("{key: anna, name: Anna,", "{key: anna, name: Anna, hours: {mon-fri: '09:00-18:00'},")
    lf = make_app(text)
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    results = [take_lead(lf, LeadIn(phone=f"067111111{i}"), saturday) for i in range(4)]
    assert all(r.manager_key != "anna" for r in results)
    assert "Anna off-shift" in results[0].reason


def test_nobody_can_take_it_goes_to_the_unassigned_queue(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        conn.execute(managers.update().values(active=False))
    result = take_lead(lf, LeadIn(phone="0671234567"), NOW)
    assert result.status == "new" and result.manager_key is None
    assert result.reason == "unassigned: rule 'all' matched any lead but no one eligible among 3; " \
        "3 skipped: Anna inactive, Bohdan inactive, Chrystia inactive"  # fmt: skip
    assert get_lead(lf, result.lead_id, who=SYSTEM)["assignments"][0]["reason"] == result.reason
