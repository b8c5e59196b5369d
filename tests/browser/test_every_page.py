"""Every page of the desk, as the people who use it, in Ukrainian, Russian and English: no message missing from a
catalogue, no serious accessibility violation (axe-core, run in the page), and screenshots at desktop and phone
widths for the artefacts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.conversation import InboundMessage
from leadflow.core.policy import SYSTEM
from leadflow.services import accounts, tasks
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.conversations import take_inbound
from leadflow.services.reports import REPORTS
from leadflow.services.sla import escalate_due, record_contact
from leadflow.web import i18n
from tests.browser.conftest import screenshot, sign_in
from tests.support import bearer, live_server, new_key, web_user

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Продажі, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: desk, name: Відділ якості, timezone: Europe/Kyiv, head: halyna, hours: always, desk: true}
managers:
  - {key: anna, name: Анна Коваль, team: sales, capacity: 20, products: [credit]}
  - {key: bohdan, name: Богдан Мельник, team: sales, capacity: 20, products: [credit]}
  - {key: halyna, name: Галина Шевченко, team: sales, capacity: 20, products: []}
  - {key: dana, name: Дана Собко, team: desk, role: desk, capacity: 20, products: [leasing]}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna, bohdan], when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: desk, managers: [dana], when: {product: leasing}, strategy: round_robin}
sla:
  default:
    first_contact: 10m
    count: wall_clock
    chain: {max_hops: 2, final: team_head}
# Shown on the rules page; nothing here happens while the pages are walked.
cadences: [{key: seven-calls, attempts: 7, closed_days: [sun]}]
automations:
  triggers:
    - key: meeting-booked-qualifies-the-lead
      when: {client_event: meeting_booked}
      if: {open: true, contacted: true}
      then: [{status: assigned}, {notify: {to: head, text: "Зустріч призначено: {{ lead.name }}"}}]
    - key: quiet-for-a-month
      when: {idle: 30d}
      then: [{task: {title: "Нагадати про себе {{ lead.name }}", kind: call, due: next_working_day}}]
"""


@dataclass
class Desk:
    url: str
    passwords: dict[str, str]
    lead_id: int  # anna's
    desk_lead_id: int


@pytest.fixture
def desk(make_app: Callable[[str], Leadflow], tmp_path: Path) -> Iterator[Desk]:
    app = make_app(RULES)
    # The rules page names the file's path, which has no spaces to break at: a long one must not widen a phone's page.
    rules_file = tmp_path / "a_checkout_of_leadflow_somewhere_deep" / "leadflow" / "examples" / "rules_in_force.yaml"
    rules_file.parent.mkdir(parents=True)
    rules_file.write_text(RULES)
    passwords = {
        "anna": web_user(app, "anna", "manager", manager="anna"),
        "dana": web_user(app, "dana", "desk", manager="dana", teams=["desk"]),
        "halyna": web_user(app, "halyna", "head", manager="halyna", teams=["sales"]),
        "root": web_user(app, "root", "admin"),
    }
    key = new_key(app, "write")
    with live_server(app, rules=str(rules_file)) as url:

        def post(**fields: Any) -> int:
            answer = httpx.post(f"{url}/api/v1/leads", json=fields, headers=bearer(key), timeout=30)
            assert answer.status_code == 201, answer.text
            return int(answer.json()["id"])

        lead_id = post(name="Іван Петренко", phone="067 123 45 67", product="credit", message="Потрібен кредит")
        post(name="Оксана Лисенко", phone="067 123 45 68", product="credit", message="Передзвоніть")
        post(name="Марія Гнатюк", phone="050 111 22 33", product="credit")
        desk_lead_id = post(name="ТОВ Агросвіт", phone="067 765 43 21", product="leasing", company="ТОВ Агросвіт")
        post(name="Петро Мороз", email="petro@example.org", product="credit", message="casino")
        # Today's first contacts, for the board's bands (round robin gave the first lead to Anna, the next to Bohdan).
        for lead, manager in ((lead_id, "anna"), (lead_id + 1, "bohdan")):
            record_contact(app, lead, manager, "call", "connected", utcnow() + timedelta(minutes=4), who=SYSTEM)
        # The client also wrote through Telegram, and Anna answered there: the card shows the conversation.
        app.channels = ChannelsConfig(telegram_bot_token="1:token", telegram_webhook_secret="secret-token")  # type: ignore[arg-type]
        take_inbound(app, [InboundMessage("telegram", "7:1", "7", "А можна без довідки про доходи?", name="Іван",
                                          lead={"phone": "067 123 45 67"})], utcnow())  # fmt: skip
        with app.engine.begin() as conn:
            anna = accounts.sign_in(conn, accounts.key_secret(conn), "anna", passwords["anna"], utcnow(), address=None,
                                    user_agent=None, throttle=accounts.Throttle(), times=accounts.SessionTimes())  # fmt: skip
        answer = httpx.post(f"{url}/api/v1/leads/{lead_id}/messages", headers=bearer(anna.token), timeout=30,
                            json={"text": "Так, можна: достатньо паспорта і коду."})  # fmt: skip
        assert answer.status_code == 202, answer.text
        # Anna's tasks on her lead: one overdue, one for tomorrow, one done (her queue's list and the card show them).
        for title, hours in (("Передзвонити щодо ставки", -1), ("Надіслати пропозицію", 24), ("Уточнити дохід", 2)):
            task = tasks.create_task(app, utcnow(), who=SYSTEM, lead_id=lead_id, title=title,
                                     due_at=utcnow() + timedelta(hours=hours))  # fmt: skip
        tasks.complete_task(app, task["id"], utcnow(), who=SYSTEM, note="Клієнт надіслав довідку")
        escalate_due(app, utcnow() + timedelta(minutes=11))  # the feed and breaches have something to show
        yield Desk(url, passwords, lead_id, desk_lead_id)


def pages_of(desk: Desk) -> dict[str, list[str]]:
    return {
        "anna": ["/", "/pipeline", "/search?q=067+123", f"/leads/{desk.lead_id}", "/reports/managers"],
        "dana": ["/desk", f"/leads/{desk.desk_lead_id}"],
        "halyna": [
            "/team",
            "/feed",
            "/unassigned",
            "/junk",
            "/breaches",
            "/rules",
            f"/leads/{desk.lead_id}",
            "/reports",
            *(f"/reports/{name}" for name in REPORTS if name != "funnel"),
        ],
        "root": ["/outbox", "/admin/users", "/admin/keys", "/admin/audit"],
    }


def _walk(page: Page, desk: Desk, visit: Callable[[str, str, Page], None]) -> None:
    for person, paths in pages_of(desk).items():
        page.context.clear_cookies()
        sign_in(page, person, desk.passwords[person])
        for path in paths:
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, f"{person} {path}: {answer and answer.status}"
            page.wait_for_load_state("load")
            visit(person, path, page)


@pytest.mark.parametrize("language", ["uk", "ru", "en"])
def test_no_page_misses_a_translation(desk: Desk, new_context: Any, language: str) -> None:
    page = new_context(desk.url, language=language).new_page()
    page.goto("/login")
    i18n.clear_misses()
    seen: list[str] = []

    def visit(person: str, path: str, page: Page) -> None:
        assert page.get_attribute("html", "lang") == language
        seen.append(path)

    _walk(page, desk, visit)
    assert len(seen) >= 15
    missed = sorted(text for lang, text in i18n.misses() if lang == language)
    assert missed == [], f"untranslated in {language}: {missed}"


def test_no_serious_accessibility_violation(desk: Desk, new_context: Any) -> None:
    axe = AXE.read_text()
    page = new_context(desk.url, language="uk").new_page()
    found: dict[str, list[str]] = {}

    def visit(person: str, path: str, page: Page) -> None:
        page.evaluate(axe)  # evaluated by the driver, not a script tag: the page's CSP stays as it is
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [f"{v['id']}: {v['help']} ({len(v['nodes'])}: {v['nodes'][0]['target']})"
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]  # fmt: skip
        if serious:
            found[f"{person} {path}"] = serious

    page.goto("/login")
    visit("anonymous", "/login", page)
    _walk(page, desk, visit)
    assert found == {}


# The elements that reach past the phone's width, deepest first: what to fix when the page is too wide.
WIDEST = """(() => {
  const scrolled = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
    if (getComputedStyle(p).overflowX !== 'visible') return true; return false; };
  const reach = e => e.getBoundingClientRect().left + Math.max(e.scrollWidth, e.getBoundingClientRect().width);
  return [...document.querySelectorAll('body *')]
    .filter(e => reach(e) > 376 && !scrolled(e))
    .map(e => `${e.tagName.toLowerCase()}.${e.className}: ${Math.round(reach(e))}px`)
    .reverse().slice(0, 5);
})()"""

SHOTS = {("anna", "/"): "queue", ("anna", "/pipeline"): "pipeline", ("dana", "/desk"): "quality-desk",
         ("halyna", "/team"): "team-board", ("halyna", "/feed"): "live-feed", ("halyna", "/rules"): "rules",
         ("halyna", "/reports/managers"): "reports"}  # fmt: skip


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_screenshots_of_the_main_pages(desk: Desk, new_context: Any, phone: bool) -> None:
    page = new_context(desk.url, language="uk", phone=phone).new_page()
    taken = []

    def visit(person: str, path: str, page: Page) -> None:
        if phone:  # every page, not only those photographed
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375 + 1, f"{path} is {width} px wide on a phone: {page.evaluate(WIDEST)}"
        name = SHOTS.get((person, path))
        if name is None and path.startswith("/leads/") and person == "anna":
            name = "lead-card"
        if name is None:
            return
        taken.append(screenshot(page, f"{name}-{'phone' if phone else 'desktop'}"))
        if name == "lead-card":  # and the conversation with the client, further down the card
            page.locator("#thread-h").scroll_into_view_if_needed()
            taken.append(screenshot(page, f"lead-conversation-{'phone' if phone else 'desktop'}"))

    _walk(page, desk, visit)
    assert len(taken) == len(SHOTS) + 2
    assert all(path.stat().st_size > 10_000 for path in taken)
