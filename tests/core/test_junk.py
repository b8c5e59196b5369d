from leadflow.core.cleaning import clean_lead
from leadflow.core.junk import junk_reason
from leadflow.core.lead import LeadIn
from leadflow.core.rules import Junk

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
    assert verdict(name="Nobody") == "no way to contact: neither phone nor e-mail"
    assert verdict(name="Real client", phone="0671234567") is None


def test_contactless_leads_can_be_allowed() -> None:
    rules = Junk(require_contact=False)
    assert junk_reason(clean_lead(LeadIn(name="Walk-in"), "UA"), rules) is None
