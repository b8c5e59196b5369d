from decimal import Decimal

import pytest

from leadflow.core.cleaning import clean_lead, company_block, company_key, normalize_email, normalize_phone
from leadflow.core.errors import InvalidInput
from leadflow.core.lead import LeadIn, read_lead


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
    lead = clean_lead(LeadIn(phone="12", email="not-an-email"), "UA")
    assert [p.field for p in lead.problems] == ["phone", "email"]
    assert lead.phone is None and lead.email is None and not lead.reachable


def test_a_bad_phone_beside_a_good_email_keeps_the_email_and_names_the_phone() -> None:
    lead = clean_lead(LeadIn(phone="067-12", email="Good@Mail.com"), "UA")
    assert lead.reachable and lead.email == "good@mail.com" and lead.phone is None
    assert [(p.field, p.reason) for p in lead.problems] == [
        ("phone", "phone '067-12' is not a valid number for region UA")
    ]


def test_a_phone_sent_as_a_number_without_the_plus_is_international() -> None:
    lead, problems, _ = read_lead({"phone": 380671234599})
    assert problems == [] and clean_lead(lead, "UA").phone == "+380671234599"
    assert clean_lead(LeadIn(phone="0671234599"), "UA").phone == "+380671234599"


def test_unknown_fields_are_kept_under_extra() -> None:
    lead, problems, raw = read_lead({"phone": "0671234599", "comment": "hi", "extra": {"a": 1}})
    assert problems == [] and lead.extra == {"comment": "hi", "a": 1} and raw["comment"] == "hi"


def test_fields_that_cannot_be_read_are_left_out_and_named() -> None:
    lead, problems, raw = read_lead(
        {"phone": "0671234599", "budget": "lots", "name": "x" * 300, "language": ["uk"], "channel": "Telegram Bot"}
    )
    assert lead.budget is None and lead.name == "x" * 200 and lead.language is None and lead.channel == "telegram-bot"
    assert {p.field for p in problems} == {"budget", "name", "language"}
    assert raw["budget"] == "lots"  # the request is stored as it came


def test_control_characters_are_removed_and_said_so() -> None:
    lead, problems, raw = read_lead({"name": "nul \x00 byte\ud800", "phone": "+380671230003", "extra": {"k\x01": "v"}})
    assert lead.name == "nul  byte\ufffd" and raw["extra"] == {"k": "v"}
    assert [p.field for p in problems] == ["body"]


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
