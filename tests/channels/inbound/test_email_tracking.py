"""Tracked links and the open pixel of e-mail replies, end to end on SQLite and PostgreSQL: a manager's reply goes
out through the worker's delivery to an SMTP server (aiosmtpd, the tests' own) as text and HTML with its links
rewritten and a pixel; following a link over HTTP redirects to what the manager wrote and records client.link_clicked
once, loading the pixel records client.email_opened once, and a forged token is 404 with nothing recorded."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadflow.api.tracking import PIXEL
from leadflow.channels.config import NotifyConfig
from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.registry import ReplySender, repliers_from_config
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.intake import receive
from leadflow.services.leads import set_status
from leadflow.services.tracking import find_links, make_token, tracked_mail, tracking_key
from leadflow.settings import Settings
from leadflow.store.tables import client_events, events, messages
from tests.channels.conftest import LocalSMTP
from tests.channels.inbound.world import chat_team
from tests.support import admin_headers, live_server

SALES = "sales@bank.example.ua"
OFFER = "https://bank.example.ua/offer/77?from=mail&lang=uk"
CALENDAR = "http://calendar.example.com/anna"
TEXT = f"Добрий день!\nОсь пропозиція: {OFFER}.\nЗапишіться на дзвінок ({CALENDAR}) або відкрийте {OFFER} ще раз."


@dataclass
class World:
    app: Leadflow
    url: str
    client: httpx.Client
    smtp: LocalSMTP
    lead_id: int
    admin: dict[str, str]


@pytest.fixture
def world(make_app: Callable[[str], Leadflow], smtp_server: LocalSMTP) -> Iterator[World]:
    app = make_app(chat_team("email: 2h"))
    app.notify = NotifyConfig(smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_starttls=False,
                              smtp_from=f"Продажі <{SALES}>")  # fmt: skip
    lead_id = receive(app, {"name": "Олена", "email": "olena.k@example.com"}, utcnow()).lead_id
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        app.base_url = url  # the links in the e-mail point at this server
        yield World(app, url, client, smtp_server, lead_id, admin_headers(app))


def reply_and_deliver(world: World, text: str = TEXT) -> EmailMessage:
    sent = world.client.post(f"/api/v1/leads/{world.lead_id}/messages", json={"text": text}, headers=world.admin)
    assert sent.status_code == 202 and sent.json()["channel"] == "email", sent.text
    senders = {"reply": ReplySender(repliers_from_config(world.app.channels, world.app.notify))}
    assert deliver_due(world.app.engine, senders, world.app.notify, utcnow()).sent == 1
    content = world.smtp.envelopes[-1].original_content
    assert content is not None
    mail: EmailMessage = BytesParser(policy=policy.default).parsebytes(content)
    return mail


def tracked(world: World, kind: str) -> list[Any]:
    with world.app.engine.connect() as conn:
        kept = conn.execute(select(client_events).where(client_events.c.type == kind)).all()
        on_lead = conn.execute(select(events).where(events.c.type == f"client.{kind}")).all()
    assert [(k.lead_id, k.outcome) for k in kept] == [(e.lead_id, "attached") for e in on_lead]
    return list(on_lead)


def test_a_reply_goes_out_as_text_and_html_with_tracked_links_and_a_pixel(world: World) -> None:
    mail = reply_and_deliver(world)
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    text, page = plain.get_content(), html.get_content()
    links = re.findall(re.escape(world.url) + r"/r/([A-Za-z0-9_-]+)(?=[\s.)]|$)", text)
    assert len(links) == 3 and links[0] == links[2] != links[1]  # the same address twice is one tracked link
    assert OFFER not in text and CALENDAR not in text
    assert text.startswith("Добрий день!\nОсь пропозиція: " + world.url) and "дзвінок (" in text
    assert f'<a href="{world.url}/r/{links[0]}">{OFFER.replace("&", "&amp;")}</a>' in page
    assert f'<a href="{world.url}/r/{links[1]}">{CALENDAR}</a>' in page
    assert "Добрий день!<br>" in page
    pixel = re.search(r'<img src="' + re.escape(world.url) + r'/r/([A-Za-z0-9_-]+)\.gif" width="1" height="1" alt=""',
                      page)  # fmt: skip
    assert pixel is not None and pixel.group(1) not in links
    with world.app.engine.connect() as conn:
        stored = conn.execute(select(messages.c.body, messages.c.meta).where(messages.c.direction == "out")).one()
    assert stored.body == TEXT  # the lead card shows what the manager wrote
    assert stored.meta["links"] == [OFFER, CALENDAR]


def test_a_click_redirects_to_the_address_written_and_is_recorded_once(world: World) -> None:
    text = reply_and_deliver(world).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    offer, calendar = re.findall(re.escape(world.url) + r"(/r/[A-Za-z0-9_-]+)", text)[:2]
    for _ in range(2):
        answer = world.client.get(offer)
        assert answer.status_code == 302 and answer.headers["location"] == OFFER
        assert "no-store" in answer.headers["cache-control"]
    [clicked] = tracked(world, "link_clicked")
    assert clicked.lead_id == world.lead_id and clicked.actor == "system:email-tracking"
    assert clicked.data["url"] == OFFER and clicked.data["link"] == 0 and clicked.data["event_id"].endswith(":l0")
    # The lead is closed by now: the click still lands on it, the lead the e-mail was sent from.
    set_status(world.app, world.lead_id, "lost", utcnow(), who=SYSTEM, reason="price")
    assert world.client.get(calendar).headers["location"] == CALENDAR
    later = tracked(world, "link_clicked")
    assert len(later) == 2 and later[1].lead_id == world.lead_id and "(lost, closed)" in later[1].data["reason"]


def test_the_pixel_records_the_first_open(world: World) -> None:
    page = reply_and_deliver(world).get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(re.escape(world.url) + r'(/r/[A-Za-z0-9_-]+\.gif)"', page)
    assert pixel is not None
    for _ in range(2):
        answer = world.client.get(pixel.group(1))
        assert answer.status_code == 200 and answer.content == PIXEL
        assert answer.headers["content-type"] == "image/gif" and "no-store" in answer.headers["cache-control"]
    [opened] = tracked(world, "email_opened")
    assert opened.lead_id == world.lead_id and opened.data["source"] == "system:email-tracking"
    assert tracked(world, "link_clicked") == []


def test_a_forged_or_unknown_token_is_404_and_records_nothing(world: World) -> None:
    text = reply_and_deliver(world).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [real] = re.findall(re.escape(world.url) + r"/r/([A-Za-z0-9_-]+)", text)[:1]
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    key = tracking_key(world.app)
    other_link = make_token(key, 1, 7)  # signed, for a link the message does not have
    other_message = make_token(key, 999, 0)
    for token in (flipped, "m1l0AAAAAAAAAAAAAAAA", other_link, other_message, "nonsense"):
        answer = world.client.get(f"/r/{token}")
        assert answer.status_code == 404, (token, answer.text)
        assert set(answer.json()) == {"error", "message", "problems"} and "location" not in answer.headers
        pixel = world.client.get(f"/r/{token}.gif")
        assert pixel.status_code == 200 and pixel.content == PIXEL
    page = world.client.get(f"/r/{flipped}", headers={"Accept": "text/html", "Accept-Language": "uk"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert world.client.get(f"/r/{make_token(key, 1)}").status_code == 404  # the pixel's token is no link
    assert tracked(world, "link_clicked") == [] and tracked(world, "email_opened") == []


def test_tracking_turned_off_sends_the_text_as_written_and_old_links_still_lead_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = reply_and_deliver(world, f"Пропозиція: {OFFER}").get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [old_link] = re.findall(re.escape(world.url) + r"(/r/[A-Za-z0-9_-]+)", before)
    monkeypatch.setenv("LEADFLOW_CHANNELS__EMAIL_TRACKING", "false")
    world.app.channels = Settings().channels
    assert world.app.channels.email_tracking is False and ChannelsConfig().email_tracking is True
    mail = reply_and_deliver(world)
    assert mail.get_content_type() == "text/plain" and mail.get_content().strip() == TEXT
    with world.app.engine.connect() as conn:
        metas = conn.execute(select(messages.c.meta).where(messages.c.direction == "out").order_by(messages.c.id))
        assert [m.get("links") for m in metas.scalars()] == [[OFFER], None]
    # An e-mail sent while it was on keeps working; nothing more is recorded.
    assert world.client.get(old_link).headers["location"] == OFFER
    assert tracked(world, "link_clicked") == []


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("see https://a.example/x.", ["https://a.example/x"]),
        ("(https://a.example/x)", ["https://a.example/x"]),
        ("https://en.wikipedia.org/wiki/Lead_(marketing), then", ["https://en.wikipedia.org/wiki/Lead_(marketing)"]),
        ("HTTPS://A.example/?q=1&r=2!", ["HTTPS://A.example/?q=1&r=2"]),
        ("<https://a.example/p>", ["https://a.example/p"]),
        ("ftp://a.example/ and mailto:x@y.z and https:// alone", []),
        ("https://приклад.укр/шлях", ["https://приклад.укр/шлях"]),
    ],
)
def test_links_are_found_as_people_write_them(text: str, links: list[str]) -> None:
    assert [url for url, _, _ in find_links(text)] == links


def test_the_html_part_escapes_what_the_manager_wrote() -> None:
    mail = tracked_mail("https://lf.example", b"k" * 32, 5, '<b>"ціна"</b> & https://a.example/?a=1&b=<2>')
    assert "&lt;b&gt;&quot;ціна&quot;&lt;/b&gt; &amp; " in mail.html
    assert mail.links == ["https://a.example/?a=1&b="]  # an address ends where a tag would start
    assert mail.text.startswith('<b>"ціна"</b> & https://lf.example/r/m5l0')
