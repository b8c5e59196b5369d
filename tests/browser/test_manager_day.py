"""A manager's day in a real browser: the queue with its countdown, a call that stops it, the chain taking a lead
to another manager's open page without a reload, and what a manager may not reach."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import select

from leadflow.services.context import Leadflow, utcnow
from leadflow.store.tables import activities, leads
from leadflow.worker import Worker
from tests.browser.conftest import screenshot, sign_in
from tests.support import bearer, live_server, new_key, web_user

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
managers:
  - {key: anna, name: Anna Koval, team: sales, capacity: 50, products: [credit]}
  - {key: bohdan, name: Bohdan Melnyk, team: sales, capacity: 50, products: [credit]}
  - {key: halyna, name: Halyna Shevchenko, team: sales, capacity: 50, products: []}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna, bohdan], when: {product: credit}, strategy: round_robin}
sla:
  default:
    first_contact: 10m
    count: wall_clock
    chain: {max_hops: 2, final: team_head}
"""


def post_lead(url: str, key: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/v1/leads", json={"product": "credit", **fields}, headers=bearer(key), timeout=30)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_connected_call_stops_the_countdown(make_app: Callable[[str], Leadflow], new_context: Any) -> None:
    app = make_app(RULES)
    password = web_user(app, "anna", "manager", manager="anna")
    key = new_key(app, "write")
    with live_server(app) as url:
        lead = post_lead(url, key, name="Ivan Petrenko", phone="067 123 45 67", message="Call me about a loan")
        assert lead["manager"]["key"] == "anna"
        page = new_context(url).new_page()
        sign_in(page, "anna", password)
        row = page.locator(f"#lead-{lead['id']}")
        expect(row).to_contain_text("Ivan Petrenko")
        clock = row.locator(".countdown[data-due]")
        expect(clock).to_have_text(re.compile(r"^\D*\d{1,2}:\d\d$"))
        first = clock.inner_text()
        time.sleep(1.2)
        assert clock.inner_text() != first, "the countdown does not run"
        screenshot(page, "manager-queue-en")

        page.click(f"#lead-{lead['id']} a.lead-title")
        expect(page.locator("#lead .countdown[data-due]")).to_be_visible()
        expect(page.locator("a[href^='tel:']")).to_have_attribute("href", "tel:+380671234567")
        screenshot(page, "manager-lead-card-en")
        page.get_by_label("Talk time, min").fill("2.5")
        page.click("button[data-outcome=connected]")
        done = page.locator("#lead .countdown.done")
        expect(done).to_be_visible()
        expect(page.locator("#lead .countdown[data-due]")).to_have_count(0)
        stopped = done.inner_text()
        time.sleep(1.2)
        assert done.inner_text() == stopped
        expect(page.locator("ol.timeline")).to_contain_text("First contact")
        with app.engine.connect() as conn:
            row_db = conn.execute(select(leads.c.first_contact_at, leads.c.sla_state).where(leads.c.id == lead["id"]))
            contacted, state = row_db.one()
            talk = conn.execute(select(activities.c.duration_seconds).where(activities.c.lead_id == lead["id"]))
            assert talk.scalar_one() == 150  # the talk time typed beside the button, for the reports' talk minutes
        assert contacted is not None and state == "met"


def test_an_escalated_lead_leaves_one_page_and_reaches_the_other(
    make_app: Callable[[str], Leadflow], new_context: Any
) -> None:
    app = make_app(RULES)
    passwords = {name: web_user(app, name, "manager", manager=name) for name in ("anna", "bohdan")}
    key = new_key(app, "write")
    shift = {"by": timedelta(0)}

    def clock() -> datetime:
        return utcnow() + shift["by"]

    worker = Worker(app, poll_seconds=0.1, senders={}, clock=clock)
    with live_server(app) as url:
        lead = post_lead(url, key, name="Olha Bondar", phone="+380501112233")
        assert lead["manager"]["key"] == "anna"
        pages: dict[str, Page] = {}
        for name in ("anna", "bohdan"):
            pages[name] = new_context(url).new_page()
            sign_in(pages[name], name, passwords[name])
        expect(pages["anna"].locator(f"#lead-{lead['id']}")).to_be_visible()
        expect(pages["bohdan"].locator(f"#lead-{lead['id']}")).to_have_count(0)
        # Both pages are connected to the live stream before the worker acts.
        time.sleep(0.8)
        threads = worker.start()
        try:
            shift["by"] = timedelta(minutes=11)  # past the 10-minute deadline, for the worker only
            started = time.monotonic()
            expect(pages["bohdan"].locator(f"#lead-{lead['id']}")).to_be_visible(timeout=2000)
            expect(pages["anna"].locator(f"#lead-{lead['id']}")).to_have_count(0, timeout=2000)
            elapsed = time.monotonic() - started
        finally:
            worker.stop.set()
            for thread in threads:
                thread.join(timeout=10)
        assert elapsed < 2.0
        expect(pages["bohdan"].locator(f"#lead-{lead['id']}.fresh")).to_be_visible()
        expect(pages["anna"].locator(".notice.gone")).to_contain_text("Bohdan Melnyk")
        screenshot(pages["bohdan"], "queue-after-escalation")


def test_a_manager_cannot_reach_another_managers_lead(make_app: Callable[[str], Leadflow], new_context: Any) -> None:
    app = make_app(RULES)
    password = web_user(app, "anna", "manager", manager="anna")
    key = new_key(app, "write")
    with live_server(app) as url:
        mine = post_lead(url, key, name="Taras Lysenko", phone="+380671110001")
        theirs = post_lead(url, key, name="Secretclient Nameless", phone="+380671110002", email="secret@example.org")
        assert (mine["manager"]["key"], theirs["manager"]["key"]) == ("anna", "bohdan")
        context = new_context(url)
        page = context.new_page()
        sign_in(page, "anna", password)
        answer = page.goto(f"/leads/{theirs['id']}")
        assert answer is not None and answer.status == 404
        text = page.content()
        assert "Secretclient" not in text and "380671110002" not in text and "secret@example.org" not in text
        # A change without the session's CSRF token is refused, whatever the cookie says.
        refused = context.request.post(f"/leads/{mine['id']}/contact", form={"kind": "call", "outcome": "connected"})
        assert refused.status == 403
        answer = page.goto(f"/leads/{mine['id']}")
        assert answer is not None and answer.status == 200
        expect(page.locator("#lead .countdown[data-due]")).to_be_visible()  # the refused post changed nothing


def test_the_queue_works_on_a_phone(make_app: Callable[[str], Leadflow], new_context: Any) -> None:
    app = make_app(RULES)
    password = web_user(app, "anna", "manager", manager="anna")
    key = new_key(app, "write")
    with live_server(app) as url:
        for i in range(3):
            post_lead(url, key, name=f"Client {i}", phone=f"+38067111000{i}", message="Need a credit for a car")
        page = new_context(url, phone=True).new_page()
        sign_in(page, "anna", password)
        expect(page.locator("ul.leads > li")).to_have_count(2)  # round robin: anna has every other lead
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width} px wide on a 375 px screen"
        screenshot(page, "manager-queue-phone-en")
        page.locator("ul.leads a.lead-title").first.click()
        expect(page.locator("button[data-outcome=connected]")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "manager-lead-card-phone-en")


def test_the_pipeline_moves_a_lead_by_drag_or_by_keyboard(
    make_app: Callable[[str], Leadflow], new_context: Any
) -> None:
    app = make_app(RULES)
    password = web_user(app, "anna", "manager", manager="anna")
    key = new_key(app, "write")
    with live_server(app) as url:
        dragged = post_lead(url, key, name="Dmytro Rudenko", phone="+380671110011")
        post_lead(url, key, name="For Bohdan", phone="+380671110012")
        keyed = post_lead(url, key, name="Sofiia Gonchar", phone="+380671110013")
        page = new_context(url).new_page()
        sign_in(page, "anna", password)
        page.goto("/pipeline")
        card = page.locator(f"[data-lead='{dragged['id']}']")
        expect(page.locator("[data-status=assigned]")).to_contain_text("Dmytro Rudenko")
        card.drag_to(page.locator("[data-status=qualified]"))
        expect(page.locator("[data-status=qualified]")).to_contain_text("Dmytro Rudenko")
        # The keyboard's way: the card's own status list and its Move button.
        page.focus(f"#move-{keyed['id']}")
        page.keyboard.press("End")  # the last open status
        page.locator(f"[data-lead='{keyed['id']}'] button").focus()
        page.keyboard.press("Enter")
        expect(page.locator("[data-status=qualified]")).to_contain_text("Sofiia Gonchar")
        with app.engine.connect() as conn:
            statuses = dict(conn.execute(select(leads.c.id, leads.c.status)).all())
        assert statuses[dragged["id"]] == statuses[keyed["id"]] == "qualified"
