"""The quality desk's pages over real HTTP, on SQLite and PostgreSQL: the queue, the desk panel of a lead card (the
duplicates beside the lead, junk, keep, hand over with its preview first, to the owner) and restoring junk."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import assignments, contacts, deals, events, leads, managers
from tests.support import bearer, live_server, new_key, web_sign_in, web_user

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: vip, name: VIP, head: halyna, desk: true, desk_sla: 15m, hours: always}
  - {key: sales, name: Sales, desk: true, desk_sla: 30m, hours: always}
managers:
  - {key: olena, name: Olena, team: vip, capacity: 10}
  - {key: taras, name: Taras, team: vip, capacity: 10}
  - {key: halyna, name: Halyna, team: vip, capacity: 10}
  - {key: dana, name: Dana, team: vip, role: desk}
  - {key: sam, name: Sam, team: sales, capacity: 10}
  - {key: stas, name: Stas, team: sales, role: desk}
routing:
  rules:
    - {key: service, team: sales, managers: [sam], priority: 10, when: {product: service}}
    - {key: vip, team: vip, managers: [olena, taras], strategy: round_robin}
dedupe: {fold_window: off}
"""
HTMX = {"HX-Request": "true"}


@dataclass
class Desk:
    lf: Leadflow
    url: str
    key: str
    passwords: dict[str, str]

    clients: list[httpx.Client]

    def signed_in(self, username: str) -> tuple[httpx.Client, str]:
        """A browser signed in as `username` (closed at the test's end), and its CSRF token."""
        client = httpx.Client(base_url=self.url, timeout=30)
        self.clients.append(client)
        return client, web_sign_in(client, username, self.passwords[username])

    def lead(self, **fields: Any) -> int:
        answer = httpx.post(f"{self.url}/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"} | fields,
                            headers=bearer(self.key), timeout=30)  # fmt: skip
        assert answer.status_code == 201, answer.text
        assert answer.json()["reason"].startswith("waiting for the quality desk"), answer.text
        return int(answer.json()["id"])


@pytest.fixture
def world(make_app: Callable[[str], Leadflow]) -> Iterator[Desk]:
    lf = make_app(RULES)
    passwords = {
        "dana": web_user(lf, "dana", "desk", manager="dana", teams=["vip"]),
        "stas": web_user(lf, "stas", "desk", manager="stas", teams=["sales"]),
        "halyna": web_user(lf, "halyna", "head", manager="halyna", teams=["vip"]),
        "olena": web_user(lf, "olena", "manager", manager="olena"),
    }
    with live_server(lf) as url:
        desk = Desk(lf, url, new_key(lf, "write"), passwords, [])
        yield desk
        for client in desk.clients:
            client.close()


def counts(lf: Leadflow) -> dict[str, int]:
    with lf.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (events, assignments, deals, contacts)}  # fmt: skip


def lead_row(lf: Leadflow, lead_id: int) -> dict[str, Any]:
    with lf.engine.connect() as conn:
        row = conn.execute(
            select(leads.c.status, leads.c.queue, leads.c.junk_reason, managers.c.key.label("owner"))
            .outerjoin(managers, managers.c.id == leads.c.manager_id)
            .where(leads.c.id == lead_id)
        ).one()
        found = conn.execute(select(events.c.type, events.c.data).where(events.c.lead_id == lead_id)
                             .order_by(events.c.id)).all()  # fmt: skip
    return {**row._asdict(), "events": [e.type for e in found], "data": {e.type: e.data for e in found}}


def owned_contact(lf: Leadflow, owner: str, **fields: str) -> None:
    """A client taras already works with: a contact with an owner."""
    with lf.engine.begin() as conn:
        owner_id = conn.execute(select(managers.c.id).where(managers.c.key == owner)).scalar_one()
        conn.execute(contacts.insert().values(owner_id=owner_id, created_at=datetime.now(UTC), **fields))


def test_the_queue_shows_leads_oldest_first_with_their_desk_deadlines(world: Desk) -> None:
    owned_contact(world.lf, "taras", name="Iryna", email="iryna@acme.ua")
    first = world.lead(name="Petro First", message="Need 40 units by Friday")
    second = world.lead(name="Iryna Second", phone=None, email="Iryna@ACME.ua", company="Acme")
    elsewhere = world.lead(name="Sales Only", phone="0679990001", product="service")  # team sales' desk
    dana, _ = world.signed_in("dana")
    page = dana.get("/desk")
    assert page.status_code == 200, page.text
    text = page.text
    assert text.index("Petro First") < text.index("Iryna Second") and "Sales Only" not in text
    assert 'sse-connect="/live?watch=desk"' in text and 'hx-get="/desk/rows?limit=50&amp;offset=0"' in text
    clocks = re.findall(r'class="countdown" data-due="([^"]+)" data-total="(\d+)"', text)
    assert len(clocks) == 2 and {total for _, total in clocks} == {"900"}  # the team's desk SLA, 15 minutes
    assert "Need 40 units by Friday" in text and "iryna@acme.ua" in text and "Acme" in text
    item = text[text.index(f'id="desk-{second}"') :]
    assert "Possible duplicate" in item and "owned by Taras" in item
    assert "Possible duplicate" not in text[text.index(f'id="desk-{first}"') : text.index(f'id="desk-{second}"')]
    # Paging: one a page, with the way on and back.
    one = dana.get("/desk", params={"limit": 1}).text
    assert "Petro First" in one and "Iryna Second" not in one and 'rel="next"' in one and 'rel="prev"' not in one
    two = dana.get("/desk", params={"limit": 1, "offset": 1}).text
    assert "Iryna Second" in two and 'rel="prev"' in two and 'rel="next"' not in two
    # The fragment the live signal asks for marks what arrived since the page was drawn.
    rows = dana.get("/desk/rows", params={"shown": str(first)})
    assert rows.status_code == 200 and "<html" not in rows.text
    assert re.search(rf'id="desk-{second}" class="fresh', rows.text)
    stas, _ = world.signed_in("stas")
    assert "Sales Only" in stas.get("/desk").text and f"desk-{elsewhere}" in stas.get("/desk/rows").text
    assert "Petro First" not in stas.get("/desk").text
    olena, _ = world.signed_in("olena")
    assert olena.get("/desk").status_code == 403  # a manager does not work the desk
    assert olena.get("/desk/rows").status_code == 403


def test_the_card_shows_a_duplicate_beside_the_lead_and_sends_it_to_the_owner(world: Desk) -> None:
    owned_contact(world.lf, "taras", name="Iryna", email="iryna@acme.ua")
    lead_id = world.lead(name="Iryna", phone=None, email="iryna@acme.ua")
    dana, csrf = world.signed_in("dana")
    card = dana.get(f"/leads/{lead_id}").text
    panel = card[card.index('id="desk-h"') :]
    assert "Possible duplicates" in panel and 'data-match="contact-1"' in panel
    row = panel[panel.index('data-match="contact-1"') : panel.index("</tr>", panel.index('data-match="contact-1"'))]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:2] == ["E-mail", "iryna@acme.ua"]  # by which field, and this lead's own value beside it
    assert cells[2].startswith("Contact #1") and cells[3] == "iryna@acme.ua" and cells[5] == "Taras"
    assert "duplicate of existing contact #1 by email iryna@acme.ua, owned by Taras" in panel
    assert re.search(r'class="countdown" data-due="[^"]+" data-total="900"', panel)
    assert "Send to the owner, Taras" in panel and 'list="junk-reasons-' in panel
    sent = dana.post(f"/desk/leads/{lead_id}/to-owner", data={"csrf_token": csrf, "note": "second request"},
                     headers=HTMX)  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert "Sent to the client&#39;s owner, Taras" in sent.text and 'id="desk-h"' not in sent.text
    after = lead_row(world.lf, lead_id)
    assert (after["owner"], after["queue"], after["status"]) == ("taras", None, "assigned")
    assert {"lead.duplicate", "lead.left_desk"} <= set(after["events"])
    assert after["data"]["lead.left_desk"]["action"] == "to_owner"


def test_junk_needs_a_reason_and_a_head_restores_it(world: Desk) -> None:
    lead_id = world.lead(name="Casino Bonus")
    dana, csrf = world.signed_in("dana")
    dana_csrf = csrf
    empty = dana.post(f"/desk/leads/{lead_id}/junk", data={"csrf_token": csrf, "reason": " "}, headers=HTMX)
    assert empty.status_code == 422 and "say why the lead is junk" in empty.text
    assert empty.headers["hx-retarget"] == "#notices"
    junked = dana.post(f"/desk/leads/{lead_id}/junk", data={"csrf_token": csrf, "reason": "spam"}, headers=HTMX)
    assert junked.status_code == 200, junked.text
    assert "Set aside as junk: spam" in junked.text
    assert f'action="/leads/{lead_id}/restore"' not in junked.text  # the desk may read it now, not restore it
    after = lead_row(world.lf, lead_id)
    assert (after["status"], after["queue"], after["junk_reason"]) == ("junk", None, "spam")
    assert after["events"][-2:] == ["lead.junked", "lead.left_desk"]
    halyna, csrf = world.signed_in("halyna")
    card = halyna.get(f"/leads/{lead_id}").text
    assert f'action="/leads/{lead_id}/restore"' in card and 'id="restore-h"' in card
    restored = halyna.post(f"/leads/{lead_id}/restore", data={"csrf_token": csrf}, headers=HTMX)
    assert restored.status_code == 200, restored.text
    assert "Restored: team &#39;vip&#39; takes new leads through the quality desk" in restored.text
    assert 'id="desk-h"' in restored.text  # back at the desk, which a head may work too
    after = lead_row(world.lf, lead_id)
    assert (after["status"], after["queue"]) == ("new", "desk") and after["events"][-2:] == [
        "lead.restored",
        "lead.queued",
    ]
    # The head's junk list posts the same form without htmx, and is sent back to itself.
    dana.post(f"/desk/leads/{lead_id}/junk", data={"csrf_token": dana_csrf, "reason": "a test lead"})
    back = halyna.post(f"/leads/{lead_id}/restore?back=/junk", data={"csrf_token": csrf})
    assert back.status_code == 303 and back.headers["location"] == "/junk"
    assert lead_row(world.lf, lead_id)["events"].count("lead.restored") == 2


def test_keep_as_a_contact(world: Desk) -> None:
    lead_id = world.lead(name="Maria Low", company="Small Shop LLC")
    dana, csrf = world.signed_in("dana")
    kept = dana.post(f"/desk/leads/{lead_id}/contact", data={"csrf_token": csrf, "contact_name": "Maria K.",
                                                              "note": "call in spring"}, headers=HTMX)  # fmt: skip
    assert kept.status_code == 200, kept.text
    assert "Converted to a contact: kept for later as a contact and company; note: call in spring" in kept.text
    after = lead_row(world.lf, lead_id)
    assert (after["status"], after["queue"], after["owner"]) == ("converted", None, None)
    assert after["data"]["lead.left_desk"]["action"] == "contact"
    with world.lf.engine.connect() as conn:
        assert conn.execute(select(contacts.c.name)).scalars().all() == ["Maria K."]


def test_hand_over_shows_where_it_goes_first_and_writes_nothing_until_confirmed(world: Desk) -> None:
    lead_id = world.lead(name="Hot Buyer", budget=250000, company="Big Farm")
    dana, csrf = world.signed_in("dana")
    form = {"csrf_token": csrf, "hand_to": "auto", "deal_title": "Big Farm tractors", "deal_amount": "250 000,50",
            "note": "wants a call today"}  # fmt: skip
    before = counts(world.lf)
    preview = dana.post(f"/desk/leads/{lead_id}/handover-preview", data=form, headers=HTMX)
    assert preview.status_code == 200, preview.text
    assert counts(world.lf) == before  # a preview writes nothing
    picked = re.search(r"<strong>(\w+)</strong>", preview.text)
    assert picked and picked.group(1) in ("Olena", "Taras")
    assert "handed over by the quality desk: wants a call today" in preview.text
    assert "<dd>vip</dd>" in preview.text and "<dd>round_robin</dd>" in preview.text  # the rule, the strategy
    assert "Who was considered" in preview.text and "Olena" in preview.text and "Taras" in preview.text
    assert f'hx-post="/desk/leads/{lead_id}/deal"' in preview.text
    assert 'name="deal_amount" value="250 000,50"' in preview.text
    # Without script the preview is a page of its own, with the same confirmation.
    plain = dana.post(f"/desk/leads/{lead_id}/handover-preview", data=form)
    assert plain.status_code == 200 and "<h1>" in plain.text and f'action="/desk/leads/{lead_id}/deal"' in plain.text
    assert counts(world.lf) == before
    done = dana.post(f"/desk/leads/{lead_id}/deal", data=form, headers=HTMX)
    assert done.status_code == 200, done.text
    assert f"Handed over to {picked.group(1)}: handed over by the quality desk: wants a call today" in done.text
    after = lead_row(world.lf, lead_id)
    assert (after["owner"], after["queue"], after["status"]) == (picked.group(1).lower(), None, "assigned")
    assert after["data"]["lead.left_desk"]["action"] == "deal" and "lead.assigned" in after["events"]
    grown = counts(world.lf)
    assert (grown["deals"], grown["assignments"]) == (before["deals"] + 1, before["assignments"] + 1)
    with world.lf.engine.connect() as conn:
        deal = conn.execute(select(deals.c.title, deals.c.amount)).one()
    assert deal.title == "Big Farm tractors" and float(deal.amount) == 250000.5


def test_hand_over_to_the_head(world: Desk) -> None:
    lead_id = world.lead(name="For the head")
    dana, csrf = world.signed_in("dana")
    preview = dana.post(f"/desk/leads/{lead_id}/handover-preview", data={"csrf_token": csrf, "hand_to": "head"},
                        headers=HTMX)  # fmt: skip
    assert "<strong>Halyna</strong>" in preview.text and "head of team &#39;vip&#39;" in preview.text
    done = dana.post(f"/desk/leads/{lead_id}/deal", data={"csrf_token": csrf, "hand_to": "head"}, headers=HTMX)
    assert done.status_code == 200 and "Handed over to Halyna" in done.text
    assert lead_row(world.lf, lead_id)["owner"] == "halyna"


def test_refusals(world: Desk) -> None:
    lead_id = world.lead(name="Vip Client")
    stas, csrf = world.signed_in("stas")
    # the desk of another team: the lead does not exist for them
    assert stas.get(f"/leads/{lead_id}").status_code == 404
    for action, data in (("junk", {"reason": "spam"}), ("contact", {}), ("to-owner", {}),
                         ("handover-preview", {"hand_to": "auto"}), ("deal", {"hand_to": "auto"})):  # fmt: skip
        answer = stas.post(f"/desk/leads/{lead_id}/{action}", data={"csrf_token": csrf, **data}, headers=HTMX)
        assert answer.status_code == 404, (action, answer.text)
    assert stas.post(f"/leads/{lead_id}/restore", data={"csrf_token": csrf}).status_code == 404
    olena, csrf = world.signed_in("olena")
    assert olena.post(f"/desk/leads/{lead_id}/junk", data={"csrf_token": csrf, "reason": "x"}).status_code == 403
    dana, csrf = world.signed_in("dana")
    unsigned = dana.post(f"/desk/leads/{lead_id}/junk", data={"reason": "spam"})
    assert unsigned.status_code == 403  # no CSRF token: refused before anything happens
    assert dana.post(f"/desk/leads/{lead_id}/deal", data={"hand_to": "auto"}).status_code == 403
    wrong = dana.post(f"/desk/leads/{lead_id}/handover-preview", data={"csrf_token": csrf, "hand_to": "nobody"},
                      headers=HTMX)  # fmt: skip
    assert wrong.status_code == 422 and "manager &#39;nobody&#39; does not exist" in wrong.text
    after = lead_row(world.lf, lead_id)
    assert (after["status"], after["queue"]) == ("new", "desk") and "lead.left_desk" not in after["events"]


def test_a_lead_handed_out_of_the_operators_sight_sends_them_back_to_the_desk(world: Desk) -> None:
    owned_contact(world.lf, "sam", name="Oksana", email="oksana@farm.ua")  # a client of team sales
    lead_id = world.lead(name="Oksana", phone=None, email="oksana@farm.ua")
    dana, csrf = world.signed_in("dana")
    sent = dana.post(f"/desk/leads/{lead_id}/to-owner", data={"csrf_token": csrf}, headers=HTMX)
    assert sent.status_code == 204 and sent.headers["hx-redirect"] == "/desk"  # a full page load, not a swap
    assert lead_row(world.lf, lead_id)["owner"] == "sam"
    assert dana.get(f"/leads/{lead_id}").status_code == 404
