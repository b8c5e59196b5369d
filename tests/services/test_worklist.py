"""Search, the queue's order and notes: what a manager works from, limited to what they may see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from leadflow.core.errors import InvalidInput, NotFound
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.services.sla import record_contact
from leadflow.services.worklist import add_note, my_queue, search
from leadflow.store.tables import managers

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RULES = """
default_region: UA
teams:
  - {key: sales, name: Sales, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, products: [credit]}
  - {key: bohdan, name: Bohdan, team: sales, products: [leasing]}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock}
"""


def manager(app: Leadflow, key: str) -> Principal:
    with app.engine.connect() as conn:
        manager_id = conn.execute(managers.select().where(managers.c.key == key)).one().id
    return Principal("user", key, 1, (Grant("manager"),), manager_id=manager_id)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    app = make_app(RULES)
    for minutes, fields in enumerate(
        [
            {"name": "Ivan Petrenko", "phone": "067 123 45 67", "product": "credit", "company": "Agro Svit"},
            {"name": "Olha Bondar", "email": "Olha.Bondar@Example.org", "product": "credit"},
            {"name": "Taras Lysenko", "phone": "+380501112233", "product": "leasing"},
        ]
    ):
        take_lead(app, LeadIn(**fields), NOW + timedelta(minutes=minutes))
    return app


@pytest.mark.parametrize("typed", ["067 123 45 67", "+38 (067) 123-45-67", "380671234567", "1234567", "3 45 67"])
def test_a_phone_is_found_however_it_is_typed(lf: Leadflow, typed: str) -> None:
    found = search(lf, typed, who=SYSTEM)
    assert [r["name"] for r in found] == ["Ivan Petrenko"]


@pytest.mark.parametrize(("typed", "name"), [("olha.bondar@example.org", "Olha Bondar"), ("petrenko", "Ivan Petrenko"),
                                             ("agro", "Ivan Petrenko"), ("LYSENKO", "Taras Lysenko")])  # fmt: skip
def test_an_email_a_name_or_a_company_is_found(lf: Leadflow, typed: str, name: str) -> None:
    assert [r["name"] for r in search(lf, typed, who=SYSTEM)] == [name]


def test_search_shows_only_what_the_person_may_see(lf: Leadflow) -> None:
    assert search(lf, "+380501112233", who=manager(lf, "anna")) == []
    assert [r["name"] for r in search(lf, "+380501112233", who=manager(lf, "bohdan"))] == ["Taras Lysenko"]
    assert search(lf, "%%", who=SYSTEM) == []  # a wildcard typed is a character, not "everything"
    with pytest.raises(InvalidInput):
        search(lf, " a ", who=SYSTEM)


def test_the_queue_puts_the_nearest_deadline_first_and_contacted_leads_after(lf: Leadflow) -> None:
    anna = manager(lf, "anna")
    assert [r["name"] for r in my_queue(lf, who=anna)] == ["Ivan Petrenko", "Olha Bondar"]
    record_contact(lf, 1, "anna", "call", "connected", NOW + timedelta(minutes=3), who=SYSTEM)
    assert [r["name"] for r in my_queue(lf, who=anna)] == ["Olha Bondar", "Ivan Petrenko"]
    assert my_queue(lf, who=manager(lf, "bohdan"))[0]["name"] == "Taras Lysenko"


def test_a_note_goes_on_the_timeline_of_a_lead_one_may_work(lf: Leadflow) -> None:
    add_note(lf, 1, "  asked to call after 18:00  ", NOW, who=manager(lf, "anna"))
    notes = [e["data"]["note"] for e in get_lead(lf, 1, who=SYSTEM)["events"] if e["type"] == "lead.note"]
    assert notes == ["asked to call after 18:00"]
    with pytest.raises(NotFound):
        add_note(lf, 1, "not mine", NOW, who=manager(lf, "bohdan"))
    with pytest.raises(InvalidInput):
        add_note(lf, 1, "   ", NOW, who=manager(lf, "anna"))
