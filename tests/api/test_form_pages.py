"""A visitor posting a site's form gets a page in their language; a usable lead is never lost to a typo."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import leads
from tests.support import THREE_MANAGERS, admin_headers, live_server

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with (
        live_server(lf, form_redirect_hosts=["thanks.example.org"]) as url,
        httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client,
    ):
        yield client


def stored(lf: Leadflow) -> list[dict[str, object]]:
    with lf.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(leads).order_by(leads.c.id)).mappings()]


def test_a_mistyped_phone_beside_a_good_email_is_kept_and_thanked_in_the_visitors_language(
    api: httpx.Client, lf: Leadflow
) -> None:
    form = {"name": "Ivan", "phone": "067-12", "email": "good@mail.com"}
    r = api.post("/api/v1/leads", data=form, headers=BROWSER | {"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.8"})
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/html")
    assert "Дякуємо!" in r.text and '<html lang="uk">' in r.text
    [lead] = stored(lf)
    assert lead["email"] == "good@mail.com" and lead["phone"] is None and lead["status"] == "assigned"
    assert lead["raw"]["phone"] == "067-12"
    assert lead["problems"] == [{"field": "phone", "reason": "phone '067-12' is not a valid number for region UA"}]


def test_a_form_with_no_usable_contact_comes_back_with_what_to_fix(api: httpx.Client, lf: Leadflow) -> None:
    form = {"name": "Ivan <b>", "phone": "067-12", "product": "credit", "_lang": "ru"}
    r = api.post("/api/v1/leads", data=form, headers=BROWSER)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "Пожалуйста, проверьте форму" in r.text and "<li>Проверьте номер телефона.</li>" in r.text
    assert "Оставьте номер телефона или электронную почту" in r.text
    assert 'value="Ivan &lt;b&gt;"' in r.text  # what the visitor typed, safely, to fix and send again
    assert '<input type="hidden" name="product" value="credit">' in r.text
    assert '<form method="post" action="/api/v1/leads"' in r.text
    assert stored(lf) == []
    empty = api.post("/api/v1/leads", data={"name": "", "phone": ""}, headers=BROWSER)
    assert empty.status_code == 422 and "Please check the form" in empty.text and "The form is empty." in empty.text
    json_client = api.post("/api/v1/leads", data={"name": "Ivan", "phone": "067-12"})
    assert json_client.status_code == 422 and json_client.json()["error"] == "invalid_input"


def test_the_forms_own_redirect_gets_the_result_only_on_its_own_site(api: httpx.Client, lf: Leadflow) -> None:
    site = {"Origin": "https://shop.example.com"}
    ok = api.post("/api/v1/leads", data={"phone": "0671234567", "_redirect": "https://shop.example.com/thanks?x=1"},
                  headers=BROWSER | site)  # fmt: skip
    assert ok.status_code == 303 and ok.headers["location"] == "https://shop.example.com/thanks?x=1&result=ok&lead=1"
    bad = api.post("/api/v1/leads", data={"phone": "12", "email": "no", "_redirect": "https://shop.example.com/f"},
                   headers=BROWSER | site)  # fmt: skip
    assert bad.status_code == 303
    assert bad.headers["location"] == "https://shop.example.com/f?result=error&fields=phone%2Cemail%2Ccontact"
    configured = api.post("/api/v1/leads", data={"phone": "0501234567", "_redirect": "https://thanks.example.org/"},
                          headers=BROWSER | site)  # fmt: skip
    assert configured.status_code == 303 and configured.headers["location"].startswith("https://thanks.example.org/")
    elsewhere = api.post("/api/v1/leads", data={"phone": "0931234567", "_redirect": "https://evil.example.net/"},
                         headers=BROWSER | site)  # fmt: skip
    assert elsewhere.status_code == 201 and "Thank you!" in elsewhere.text  # never an open redirect
    assert [lead["status"] for lead in stored(lf)] == ["assigned"] * 3


def test_form_text_that_is_not_text_is_kept_safely_and_said_so(api: httpx.Client, lf: Leadflow) -> None:
    headers = BROWSER | {"content-type": "application/x-www-form-urlencoded"}
    r = api.post("/api/v1/leads", content=b"name=nul%00form&phone=0671234567&message=%FF%FEcall", headers=headers)
    assert r.status_code == 201, r.text
    cp1251 = {"content-type": "application/x-www-form-urlencoded; charset=windows-1251"}
    r2 = api.post("/api/v1/leads", content=b"name=%CE%EB%E5%ED%E0&phone=0501234567", headers=cp1251)
    assert r2.status_code == 201, r2.text
    first, second = stored(lf)
    assert first["name"] == "nulform" and first["message"] == "\ufffd\ufffdcall"
    assert {p["field"] for p in first["problems"]} == {"body"}  # type: ignore[union-attr]
    assert "not valid utf-8" in str(first["problems"])
    assert second["name"] == "Олена" and second["problems"] is None
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == 2


def test_every_string_of_the_visitors_pages_is_translated() -> None:
    from leadflow.web.i18n import missing
    from leadflow.web.pages import _ASK

    templates = Path(__file__).parents[2] / "leadflow" / "web" / "templates"
    texts = {m for path in templates.glob("*.html") for m in re.findall(r'_\("([^"]+)"\)', path.read_text())}
    texts |= set(_ASK.values())
    assert len(texts) > 10
    for language in ("uk", "ru"):
        assert missing(language, sorted(texts)) == []
