import pytest

from leadflow.core.cleaning import clean_lead
from leadflow.core.errors import InvalidInput
from leadflow.core.junk import check_usable, junk_reason
from leadflow.core.lead import LeadIn
from leadflow.core.rules import Junk, RulesFile

RULES = Junk(own_domains=("acme.ua",), keywords=("casino",), blocked_sources=("spam-partner",))


def verdict(**fields: str) -> str | None:
    return junk_reason(clean_lead(LeadIn.model_validate(fields), "UA"), RULES)


def test_mail_from_own_domain_and_its_subdomains_is_junk() -> None:
    assert verdict(email="boss@acme.ua") == "e-mail boss@acme.ua is from the company's own domain acme.ua"
    assert verdict(email="x@mail.acme.ua") is not None
    assert verdict(email="x@notacme.ua") is None


def test_keywords_blocked_sources_and_no_contact() -> None:
    assert verdict(phone="0671234567", message="Best CASINO bonus") == "message contains the junk keyword 'casino'"
    assert verdict(phone="0671234567", source="Spam-Partner") == "source 'Spam-Partner' is blocked"
    assert verdict(name="Real client", phone="0671234567") is None


def test_contactless_leads_are_junk_only_when_the_rules_say_so() -> None:
    walk_in = clean_lead(LeadIn(name="Walk-in", phone="12"), "UA")
    assert junk_reason(walk_in, RULES) is None  # refused by intake instead: see check_usable
    as_junk = Junk(no_contact="junk")
    assert junk_reason(walk_in, as_junk) == "no usable way to contact: phone '12' is too short for region UA"
    assert junk_reason(clean_lead(LeadIn(name="Walk-in"), "UA"), as_junk) == (
        "no way to contact: no phone, e-mail or messenger id"
    )
    assert junk_reason(walk_in, Junk(require_contact=False)) is None
    assert Junk(require_contact=False).no_contact == "route"


def test_intake_refuses_an_empty_lead_and_one_without_a_usable_contact() -> None:
    rules = RulesFile()
    for fields, field in (({}, "body"), ({"name": "Ivan", "phone": "12"}, "contact")):
        lead_in = LeadIn.model_validate(fields)
        with pytest.raises(InvalidInput) as exc:
            check_usable(lead_in, clean_lead(lead_in, "UA"), rules)
        assert exc.value.problems[-1].field == field
    routed = RulesFile.model_validate({"junk": {"no_contact": "route"}})
    check_usable(LeadIn(name="Walk-in"), clean_lead(LeadIn(name="Walk-in"), "UA"), routed)
