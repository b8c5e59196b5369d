"""Lead conversion through the service layer, on real SQLite and real PostgreSQL."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from leadflow.core.errors import Conflict, InvalidInput
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Principal
from leadflow.services.context import Leadflow
from leadflow.services.conversion import CompanyIn, ContactIn, DealIn, convert, convert_lead
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead, set_status
from leadflow.store.lead_rows import lock_lead
from leadflow.store.tables import companies, contacts, deals, managers, metadata, timers

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SAM = Principal("system", "sam")  # the service layer trusts its caller here; who may convert is tested over HTTP
RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, hours: always}
  - {key: front, name: Front office, hours: always, desk: true}
managers:
  - {key: sam, name: Sam, team: sales, capacity: 10}
  - {key: taras, name: Taras, team: sales, capacity: 10}
  - {key: fred, name: Fred, team: front, capacity: 10}
routing:
  rules:
    - {key: front, team: front, priority: 10, when: {product: front}}
    - {key: sales, team: sales, managers: [sam]}
sla:
  default: {first_contact: 10m, count: wall_clock}
"""


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


def rows(lf: Leadflow) -> dict[str, int]:
    with lf.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}


def manager(lf: Leadflow, key: str) -> dict[str, Any]:
    with lf.engine.connect() as conn:
        return dict(conn.execute(select(managers).where(managers.c.key == key)).mappings().one())


def test_an_owner_converts_their_lead_to_a_deal(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567", company="Acme LLC", budget=Decimal(7000)), NOW)
    assert lead.manager_key == "sam" and manager(lf, "sam")["open_leads"] == 1
    out = convert(
        lf,
        lead.lead_id,
        NOW + timedelta(minutes=3),
        to="deal",
        deal=DealIn(title="Two trucks"),
        who=SAM,
    )
    assert out["status"] == "converted"
    assert out["contact"] == {"id": 1, "created": True} and out["company"] == {"id": 1, "created": True}
    assert out["deal"]["manager"] == {"key": "sam", "name": "Sam"}
    sam = manager(lf, "sam")
    assert (sam["open_leads"], sam["open_value"], sam["open_deals"]) == (0, 0, 1)
    assert (sam["closed_leads"], sam["won_leads"]) == (1, 1)  # a won lead for by_conversion routing
    with lf.engine.connect() as conn:
        deal = conn.execute(select(deals)).mappings().one()
        person = conn.execute(select(contacts)).mappings().one()
        firm = conn.execute(select(companies)).mappings().one()
        waiting = conn.execute(select(func.count()).select_from(timers)).scalar_one()
    assert (deal["lead_id"], deal["title"], deal["amount"], deal["stage"]) == (lead.lead_id, "Two trucks", 7000, "new")
    assert person["owner_id"] == firm["owner_id"] == deal["manager_id"] == sam["id"]
    assert (firm["name"], firm["name_key"], firm["block_key"]) == ("Acme LLC", "acme", "acm")
    assert waiting == 0
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    assert (detail["status"], detail["sla_state"], detail["contact_id"], detail["company_id"]) == (
        "converted", "stopped", person["id"], firm["id"],
    )  # fmt: skip
    event = detail["events"][-1]
    assert (event["type"], event["actor"]) == ("lead.converted", "system:sam")
    assert event["data"]["deal"] == {"id": deal["id"], "title": "Two trucks", "amount": "7000.00"}
    with pytest.raises(Conflict, match="is 'converted', not open"):
        convert(lf, lead.lead_id, NOW, to="deal", who=SAM)


def test_an_existing_client_is_linked_and_its_owner_kept(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        taras = conn.execute(select(managers.c.id).where(managers.c.key == "taras")).scalar_one()
        firm = conn.execute(companies.insert().returning(companies.c.id), {
            "name": "ТОВ «Ромашка-Плюс»", "name_key": "ромашка плюс", "block_key": "ром", "owner_id": taras,
            "created_at": NOW}).scalar_one()  # fmt: skip
        conn.execute(contacts.insert().values(name="Olha", email="olha@romashka.ua", owner_id=taras, created_at=NOW))
    lead = take_lead(lf, LeadIn(name="Ольга", phone="0501234567", company="Romashka"), NOW)
    out = convert(lf, lead.lead_id, NOW, to="contact", contact=ContactIn(email="OLHA@romashka.ua"),
                  company=CompanyIn(name="Ромашка Плюс LLC"), who=SAM)  # fmt: skip
    assert out["contact"] == {"id": 1, "created": False} and out["company"] == {"id": firm, "created": False}
    assert out["deal"] is None
    assert (rows(lf)["contacts"], rows(lf)["companies"], rows(lf)["deals"]) == (1, 1, 0)
    with lf.engine.connect() as conn:
        person = conn.execute(select(contacts)).mappings().one()
    # Blanks are filled; the name and the owner someone keeps are not overwritten.
    assert (person["name"], person["phone"], person["company_id"], person["owner_id"]) == (
        "Olha", "+380501234567", firm, taras,
    )  # fmt: skip


def test_a_lead_without_a_company_converts_to_a_contact_only(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", email="ivan@example.com"), NOW)
    out = convert(lf, lead.lead_id, NOW, to="contact", who=SAM)
    assert (out["status"], out["company"], out["deal"]) == ("converted", None, None)
    assert rows(lf)["companies"] == 0 and manager(lf, "sam")["open_deals"] == 0


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"contact": ContactIn(phone="12", email="ivan@@x")}, ["contact.phone", "contact.email"]),
        ({"company": CompanyIn(name="ТОВ LLC")}, ["company.name"]),
        ({"deal": DealIn(title="x")}, ["deal"]),
    ],
)
def test_bad_input_names_its_field_and_writes_nothing(lf: Leadflow, kwargs: dict[str, Any], fields: list[str]) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), NOW)
    before = rows(lf)
    with pytest.raises(InvalidInput) as caught:
        convert(lf, lead.lead_id, NOW, to="contact", **kwargs, who=SAM)
    assert [p.field for p in caught.value.problems] == fields
    assert rows(lf) == before and get_lead(lf, lead.lead_id, who=SYSTEM)["status"] == "assigned"


def test_junk_and_desk_leads_are_not_converted_here(lf: Leadflow) -> None:
    junk = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), NOW)
    set_status(lf, junk.lead_id, "junk", NOW, reason="our own address", who=SYSTEM)
    with pytest.raises(Conflict, match="restore it first"):
        convert(lf, junk.lead_id, NOW, to="contact", who=SAM)
    waiting = take_lead(lf, LeadIn(name="Petro", phone="0501234567", product="front"), NOW)
    assert waiting.status == "new" and waiting.manager_key is None
    with pytest.raises(Conflict, match="waiting at the quality desk"):
        convert(lf, waiting.lead_id, NOW, to="contact", who=SAM)


def test_a_funnel_may_call_its_won_status_otherwise(make_app: Callable[[str], Leadflow]) -> None:
    funnel = """
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: junk, open: false}
  - {key: won, open: false, outcome: won}
"""
    lf = make_app(RULES + funnel)
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), NOW)
    assert convert(lf, lead.lead_id, NOW, to="contact", who=SAM)["status"] == "won"


def test_two_conversions_of_one_lead_at_once_make_one_contact(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567", company="Acme"), NOW)

    def attempt(_: int) -> str:
        try:
            convert(lf, lead.lead_id, NOW, to="deal", who=SAM)
        except Conflict:
            return "conflict"
        return "converted"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, range(2)))
    assert outcomes == ["conflict", "converted"]
    assert (rows(lf)["contacts"], rows(lf)["companies"], rows(lf)["deals"]) == (1, 1, 1)
    assert manager(lf, "sam")["open_deals"] == 1


def test_two_leads_of_one_new_client_converted_at_once_make_one_contact(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(RULES + "dedupe: {fold_window: off}\n")  # two leads of one client, not one folded into the other
    first = take_lead(lf, LeadIn(name="Ivan", phone="0671234567", company="Acme"), NOW)
    second = take_lead(lf, LeadIn(name="Ivan P.", phone="+38 067 123 45 67", company="ACME LLC"), NOW)
    with lf.engine.connect() as conn, ThreadPoolExecutor(max_workers=1) as pool:
        conn.begin()
        row = lock_lead(conn, first.lead_id)
        convert_lead(conn, lf, row, NOW, to="contact", contact=None, company=None, deal=None, actor="sam")
        # The first conversion has made the contact but not committed: the second must wait for it,
        # not decide on its own that the client is new.
        later = pool.submit(convert, lf, second.lead_id, NOW, to="contact", who=SAM)
        time.sleep(0.5)
        assert not later.done()
        conn.commit()
        answer = later.result(timeout=30)
    assert answer["contact"] == {"id": 1, "created": False} and answer["company"] == {"id": 1, "created": False}
    assert (rows(lf)["contacts"], rows(lf)["companies"]) == (1, 1)
