"""The conversations service on its own, on SQLite and PostgreSQL: what an adapter read becomes, item by item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.conversation import DeliveryStatus, InboundMessage, Unreadable
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.conversations import take_inbound
from leadflow.services.replies import send_reply
from leadflow.store.messages import mark_reply_sent
from leadflow.store.tables import channel_events, leads, messages
from tests.support import THREE_MANAGERS


def _app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    app = make_app(THREE_MANAGERS)
    app.channels = ChannelsConfig(viber_auth_token="viber-token-0123")  # type: ignore[arg-type]
    return app


def test_a_status_that_comes_before_its_replys_id_is_applied_once_the_id_is_known(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = _app(make_app)
    now = utcnow()
    lead_id = take_inbound(app, [InboundMessage("viber", "t-1", "user-1", "Привіт")], now)[0].lead_id
    assert lead_id is not None
    reply = send_reply(app, lead_id, "Вітаю!", now, who=SYSTEM)
    # Viber says "seen" for its token 777 before the worker has recorded that 777 is this reply.
    early = take_inbound(app, [DeliveryStatus("viber", "777:seen", "777", "read")], now + timedelta(seconds=1))
    assert early[0].outcome == "status" and early[0].message_id is None
    with app.engine.begin() as conn:
        mark_reply_sent(conn, reply["id"], "777", now + timedelta(seconds=2))
        state = conn.execute(select(messages.c.status, messages.c.external_id)
                             .where(messages.c.id == reply["id"])).one()  # fmt: skip
    assert tuple(state) == ("read", "777")
    late = take_inbound(app, [DeliveryStatus("viber", "777:delivered", "777", "delivered")], now)
    assert late[0].message_id == reply["id"]
    with app.engine.connect() as conn:
        assert conn.execute(select(messages.c.status).where(messages.c.id == reply["id"])).scalar() == "read"


def test_in_a_batch_an_item_that_cannot_be_taken_is_kept_alone_and_the_others_stand(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = make_app(THREE_MANAGERS.replace("junk:", "junk:\n  no_contact: refuse"))
    now = utcnow()
    nobody = InboundMessage("email", "m-1", None, "a message with no sender at all")  # no way to reach anyone
    taken = take_inbound(app, [InboundMessage("viber", "t-1", "user-1", "Привіт"), nobody,
                               Unreadable("viber", "not understood: a sticker pack", raw={"x": 1}),
                               Unreadable("viber", "ignored: a subscription", "sub:1")], now)  # fmt: skip
    assert [t.outcome for t in taken] == ["new_lead", "unreadable", "unreadable", "ignored"]
    assert "cannot make a lead" in taken[1].reason
    again = take_inbound(app, [Unreadable("viber", "not understood: a sticker pack", raw={"x": 1})], now)
    assert again[0].outcome == "repeat"  # the same body without an id is known by its content
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(channel_events)).scalar_one() == 4


def test_a_message_joining_the_open_lead_fills_in_what_the_lead_lacks(make_app: Callable[[str], Leadflow]) -> None:
    app = _app(make_app)
    now = utcnow()
    lead_id = take_inbound(app, [InboundMessage("viber", "t-1", "user-1", "Привіт", name="Олег")], now)[0].lead_id
    shared = InboundMessage("viber", "t-2", "user-1", "мій номер", kind="contact",
                            lead={"phone": "067 123 45 67", "name": "Олег Петренко"})  # fmt: skip
    assert take_inbound(app, [shared], now)[0].lead_id == lead_id
    with app.engine.connect() as conn:
        lead = conn.execute(select(leads.c.phone, leads.c.name, leads.c.phone_type).where(leads.c.id == lead_id)).one()
    assert lead.phone == "+380671234567" and lead.phone_type == "mobile"
    assert lead.name == "Олег"  # a name the lead has is kept
