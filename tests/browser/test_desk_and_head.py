"""The quality desk and the head of sales in a real browser: the operator converts a lead to a deal and hands it
over after seeing where it would go; the head reassigns a lead with a reason; both show in the lead's timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import expect
from sqlalchemy import select

from leadflow.services.context import Leadflow
from leadflow.store.tables import deals, leads, managers
from tests.browser.conftest import screenshot, sign_in
from tests.support import bearer, live_server, new_key, web_user

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always, desk: true}
managers:
  - {key: anna, name: Anna Koval, team: sales, capacity: 50, products: [credit]}
  - {key: bohdan, name: Bohdan Melnyk, team: sales, capacity: 50, products: [credit]}
  - {key: halyna, name: Halyna Shevchenko, team: sales, capacity: 50, products: []}
  - {key: dana, name: Dana Sobko, team: sales, role: desk, capacity: 50, products: []}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna, bohdan], when: {product: credit}, strategy: round_robin}
"""


def owner_of(app: Leadflow, lead_id: int) -> str | None:
    with app.engine.connect() as conn:
        query = select(managers.c.key).select_from(leads.outerjoin(managers, managers.c.id == leads.c.manager_id))
        return conn.execute(query.where(leads.c.id == lead_id)).scalar()


def test_the_desk_hands_a_deal_over_and_the_head_reassigns_it(
    make_app: Callable[[str], Leadflow], new_context: Any
) -> None:
    app = make_app(RULES)
    desk_password = web_user(app, "dana", "desk", manager="dana", teams=["sales"])
    head_password = web_user(app, "halyna", "head", manager="halyna", teams=["sales"])
    key = new_key(app, "write")
    with live_server(app) as url:
        made = httpx.post(f"{url}/api/v1/leads", headers=bearer(key), timeout=30,
                          json={"name": "Roman Tkachuk", "phone": "+380671234500", "product": "credit",
                                "company": "Agro Svit", "budget": 250000})  # fmt: skip
        assert made.status_code == 201 and made.json()["status"] == "new", made.text
        lead_id = made.json()["id"]

        desk = new_context(url).new_page()
        sign_in(desk, "dana", desk_password)
        assert desk.url.endswith("/desk")
        desk.click(f"a[href='/leads/{lead_id}']")
        desk.fill(f"#deal-title-{lead_id}", "Tractor leasing")
        desk.click("button:has-text('Deal: show where it would go')")
        preview = desk.locator(".handover-preview")
        expect(preview).to_contain_text("Anna Koval")  # the routing's pick, with why, before anything is written
        assert owner_of(app, lead_id) is None
        screenshot(desk, "desk-handover-preview")
        preview.locator("button:has-text('Confirm')").click()
        expect(desk.locator("#lead")).to_contain_text("Owner: Anna Koval")
        assert owner_of(app, lead_id) == "anna"
        with app.engine.connect() as conn:
            assert conn.execute(select(deals.c.title).where(deals.c.lead_id == lead_id)).scalar() == "Tractor leasing"

        head = new_context(url).new_page()
        sign_in(head, "halyna", head_password)
        head.goto(f"/leads/{lead_id}")
        head.select_option(f"#reassign-to-{lead_id}", "bohdan")
        head.fill(f"#reassign-reason-{lead_id}", "Anna is with a client all afternoon")
        head.click("button:has-text('Reassign')")
        timeline = head.locator("ol.timeline")
        expect(timeline).to_contain_text("Reassigned")
        expect(timeline).to_contain_text("Anna is with a client all afternoon")
        expect(timeline).to_contain_text("Left the quality desk")
        assert owner_of(app, lead_id) == "bohdan"
        screenshot(head, "lead-card-timeline")
