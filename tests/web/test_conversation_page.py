"""The conversation on the lead card, over real HTTP: what the client wrote through a channel, the manager's reply
from the card (refused without the CSRF token, refused where the channel cannot carry it), and the reply stopping
the first-contact clock."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.conversation import InboundMessage
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.conversations import take_inbound
from leadflow.store.tables import leads
from tests.support import THREE_MANAGERS, live_server, web_sign_in, web_user


def test_a_manager_reads_the_thread_and_answers_from_the_card(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(THREE_MANAGERS)
    app.channels = ChannelsConfig(viber_auth_token="viber-token-0123")  # type: ignore[arg-type]
    taken = take_inbound(app, [InboundMessage("viber", "tok-1", "viber-user-1", "Скільки коштує доставка?",
                                              name="Олег")], utcnow())  # fmt: skip
    lead_id = taken[0].lead_id
    with app.engine.connect() as conn:
        owner = conn.execute(select(leads.c.manager_id).where(leads.c.id == lead_id)).scalar_one()
        key = conn.exec_driver_sql(f"select key from managers where id = {owner}").scalar_one()
    password = web_user(app, key, "manager", manager=key, language="uk")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, key, password)
        card = client.get(f"/leads/{lead_id}")
        assert card.status_code == 200 and "Листування" in card.text and "Скільки коштує доставка?" in card.text
        assert client.post(f"/leads/{lead_id}/reply", data={"text": "200 грн"}).status_code == 403
        empty = client.post(f"/leads/{lead_id}/reply", data={"csrf_token": csrf, "text": " "},
                            headers={"HX-Request": "true"})  # fmt: skip
        assert empty.status_code == 422
        sent = client.post(f"/leads/{lead_id}/reply", data={"csrf_token": csrf, "text": "Доставка 200 грн."},
                           headers={"HX-Request": "true"})  # fmt: skip
        assert sent.status_code == 200, sent.text
        assert "Відповідь надсилається через Viber." in sent.text and "Доставка 200 грн." in sent.text
        assert "надсилається</span>" in sent.text  # the reply's state: on its way
    with app.engine.connect() as conn:
        lead = conn.execute(select(leads.c.first_contact_at, leads.c.sla_state).where(leads.c.id == lead_id)).one()
    assert lead.first_contact_at is not None and lead.sla_state == "met"


def test_a_reply_where_the_channel_cannot_carry_it_is_refused_with_the_reason(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = make_app(THREE_MANAGERS)  # no channel set up, and the client left only a phone
    password = web_user(app, "anna", "manager", manager="anna")
    taken = take_inbound(app, [InboundMessage("call", "call-1", "+380671234567", "missed call", kind="call_missed",
                                              lead={"phone": "+380671234567"})], utcnow())  # fmt: skip
    lead_id = taken[0].lead_id
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "anna", password)
        answer = client.post(f"/leads/{lead_id}/reply", data={"csrf_token": csrf, "text": "Hello"},
                             headers={"HX-Request": "true"})  # fmt: skip
    assert answer.status_code == 409
    assert "has not written through a channel leadflow can answer in: call them" in answer.text
