from decimal import Decimal

import pytest

from leadflow.core.cleaning import clean_lead, company_block, company_key, normalize_email, normalize_phone
from leadflow.core.errors import InvalidInput
from leadflow.core.lead import LeadIn


@pytest.mark.parametrize(
    "raw", ["+380 (67) 123-45-67", "0671234567", "067 123 45 67", "+380671234567", "380671234567", "(067)123-45-67"]
)
def test_ukrainian_mobile_written_many_ways_is_one_number(raw: str) -> None:
    assert normalize_phone(raw, "UA") == ("+380671234567", "mobile")


def test_landline_is_classified() -> None:
    assert normalize_phone("044 234 56 78", "UA") == ("+380442345678", "landline")


def test_foreign_number_keeps_its_country() -> None:
    assert normalize_phone("+48 512 345 678", "UA")[0] == "+48512345678"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+38 067", "phone '+38 067' is too short for region UA"),
        ("hello", "phone 'hello' is not a phone number for region UA"),
        ("067123456789012", "phone '067123456789012' is too long"),
    ],
)
def test_bad_phones_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_phone(raw, "UA")
    assert exc.value.problems[0].field == "phone"
    assert exc.value.problems[0].reason.startswith(reason)


def test_email_is_normalised_and_validated() -> None:
    assert normalize_email("  Ivan.Petrenko@GMAIL.com ".strip()) == "ivan.petrenko@gmail.com"
    with pytest.raises(InvalidInput) as exc:
        normalize_email("ivan@@gmail")
    assert exc.value.problems[0].field == "email"


def test_company_key_ignores_legal_form_case_and_punctuation() -> None:
    assert company_key("ТОВ «Ромашка-Плюс»") == company_key("ромашка плюс") == "ромашка плюс"
    assert company_key("Acme, LLC") == company_key("ACME") == "acme"
    assert company_block(company_key("Acme Industries")) == "acm"


def test_clean_lead_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidInput) as exc:
        clean_lead(LeadIn(phone="12", email="not-an-email"), "UA")
    assert [p.field for p in exc.value.problems] == ["phone", "email"]


def test_clean_lead_uses_the_leads_region_for_local_numbers() -> None:
    lead = clean_lead(LeadIn(phone="512 345 678", region="pl", budget=Decimal("1200.50")), "UA")
    assert lead.phone == "+48512345678"
    assert lead.region == "PL"
    assert lead.budget == Decimal("1200.50")


def test_form_blanks_are_missing_values() -> None:
    lead = LeadIn.model_validate({"name": "Ivan", "email": "", "phone": "  "})
    assert lead.email is None and lead.phone is None


@pytest.mark.parametrize(("raw", "value"), [("1 500,50", "1500.50"), ("1,500.50", "1500.50"), ("12\u00a0000", "12000")])
def test_budgets_as_spreadsheets_write_them(raw: str, value: str) -> None:
    assert LeadIn(budget=raw).budget == Decimal(value)  # type: ignore[arg-type]
