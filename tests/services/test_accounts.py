"""Lead-to-account matching: another person of a company the team already works with goes to that account's
owner, found by the company's name or the corporate e-mail domain. On real SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from leadflow.core.accounts import corporate_domain
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.services.sla import record_contact
from leadflow.store.tables import contacts, managers

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: b2b, name: B2B, match_accounts: true}
  - {key: retail, name: Retail}
managers:
  - {key: olena, name: Olena, team: b2b}
  - {key: taras, name: Taras, team: b2b}
  - {key: ira, name: Ira, team: retail}
  - {key: max, name: Max, team: retail}
routing:
  rules:
    - {key: retail, team: retail, managers: [ira, max], strategy: round_robin, when: {product: retail}}
    - {key: b2b, team: b2b, managers: [olena, taras], strategy: round_robin}
dedupe:
  free_mail_domains: [corp-mail.example]
"""


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_free_mail_names_no_company() -> None:
    assert corporate_domain("ivan@Romashka.UA") == "romashka.ua"
    assert corporate_domain("ivan@gmail.com") is None and corporate_domain("x@ukr.net") is None
    assert corporate_domain("x@corp-mail.example", {"corp-mail.example"}) is None
    assert corporate_domain(None) is None


def test_a_colleague_from_the_same_company_goes_to_the_accounts_owner(lf: Leadflow) -> None:
    first = take_lead(lf, LeadIn(name="Ivan", company="ТОВ «Ромашка-Плюс»", email="ivan@romashka.ua"), at(0))
    assert first.manager_key == "olena"
    by_name = take_lead(lf, LeadIn(name="Olha", company="Ромашка Плюс", phone="0501112233"), at(1))
    assert by_name.manager_key == "olena"  # round robin alone would have given her to Taras
    assert by_name.reason.startswith(
        f"same account as open lead #{first.lead_id} by company name 'ТОВ «Ромашка-Плюс»' (100%), owned by Olena"
    )
    by_domain = take_lead(lf, LeadIn(name="Petro", email="petro@romashka.ua"), at(2))
    assert by_domain.manager_key == "olena"
    assert by_domain.reason.startswith(
        f"same account as open lead #{first.lead_id} by e-mail domain romashka.ua, owned by Olena"
    )
    detail = get_lead(lf, by_name.lead_id, who=SYSTEM)
    assert detail["duplicate_of_id"] is None and detail["contact_id"] is None  # another person, not a duplicate
    assert "lead.account_matched" in [e["type"] for e in detail["events"]]
    # A colleague is their own client: reaching Olha does not count as reaching Ivan.
    assert record_contact(lf, by_name.lead_id, "olena", "call", "connected", at(3), who=SYSTEM)["covered"] == []
    assert get_lead(lf, first.lead_id, who=SYSTEM)["sla_state"] in (None, "running")


def test_free_mail_and_teams_without_account_matching_are_routed_as_usual(lf: Leadflow) -> None:
    take_lead(lf, LeadIn(name="Ivan", email="ivan@gmail.com"), at(0))  # olena
    assert take_lead(lf, LeadIn(name="Olha", email="olha@gmail.com"), at(1)).manager_key == "taras"
    take_lead(lf, LeadIn(name="A", email="a@shop.ua", product="retail"), at(2))  # ira
    assert take_lead(lf, LeadIn(name="B", email="b@shop.ua", product="retail"), at(3)).manager_key == "max"


def test_a_contact_of_the_company_names_its_owner(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        taras = conn.execute(select(managers.c.id).where(managers.c.key == "taras")).scalar_one()
        conn.execute(contacts.insert().values(name="Iryna", email="iryna@acme.ua", email_domain="acme.ua",
                                              owner_id=taras, created_at=T0))  # fmt: skip
    lead = take_lead(lf, LeadIn(name="Oleh", email="oleh@acme.ua"), at(0))
    assert lead.manager_key == "taras"
    assert lead.reason.startswith("same account as contact #1 by e-mail domain acme.ua, owned by Taras")
