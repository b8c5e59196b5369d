"""Every webhook body names the event that caused it: its id in the events table, one id per event, over real
deliveries to a local receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import close_senders, senders_from_config
from leadflow.channels.signing import verify_signature
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.batch import assign_backlog
from leadflow.services.context import Leadflow
from leadflow.services.delivery import deliver_due
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due
from leadflow.store.tables import events, managers, outbox
from tests.support import SLA_TEAM

if TYPE_CHECKING:
    from tests.channels.conftest import LocalHTTP

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_event_ids"


def test_every_webhook_body_carries_the_id_of_its_own_event(
    make_app: Callable[[str], Leadflow], http_server: LocalHTTP
) -> None:
    lf = make_app(SLA_TEAM.replace("first_contact: 2s", "first_contact: 1h"))
    lf.notify = NotifyConfig(webhook_urls=[f"{http_server.url}/hooks/crm"], webhook_secret=SECRET, timeout_seconds=2)
    ivan = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)  # lead.assigned
    take_lead(lf, LeadIn(name="Olha", phone="0671234568"), T0)  # lead.assigned, an event of its own
    again = take_lead(lf, LeadIn(name="Ivan", phone="0671234567", message="still waiting"), T0 + timedelta(minutes=1))
    assert again.merged and again.lead_id == ivan.lead_id  # lead.repeat on Ivan's lead
    assert escalate_due(lf, T0 + timedelta(hours=1)) == 2  # lead.escalated, twice
    with lf.engine.begin() as conn:
        conn.execute(update(managers).values(absent=True))
    waiting = take_lead(lf, LeadIn(name="Petro", phone="0501112233"), T0 + timedelta(hours=2))  # lead.unassigned
    assert waiting.status == "new"
    with lf.engine.begin() as conn:
        conn.execute(update(managers).values(absent=False))
    assert assign_backlog(lf, T0 + timedelta(hours=2), who=SYSTEM).assigned == 1  # lead.assigned, by the batch

    senders = senders_from_config(lf.notify)
    while deliver_due(lf.engine, senders, lf.notify, T0 + timedelta(hours=3)).handled:
        pass
    close_senders(senders)

    with lf.engine.connect() as conn:
        stored = {row.id: row for row in conn.execute(select(events))}
        query = select(outbox.c.id, outbox.c.event_id).where(outbox.c.channel == "webhook")
        outbox_events: dict[int, int] = {row.id: row.event_id for row in conn.execute(query)}
    bodies: list[dict[str, Any]] = []
    for request in http_server.requests:
        body, delivery = request.json(), request.headers["x-leadflow-delivery"]
        assert verify_signature(SECRET, request.body, request.headers["x-leadflow-signature"], delivery, time.time())
        event = stored[body["event_id"]]  # an id of the events table ...
        assert (event.type, event.lead_id) == (body["event"], body["lead"]["id"])  # ... of the event it is about
        assert outbox_events[int(delivery)] == body["event_id"]  # the outbox row names it too
        bodies.append(body)
    kinds = sorted(b["event"] for b in bodies)
    assert kinds == [*["lead.assigned"] * 3, *["lead.escalated"] * 2, "lead.repeat", "lead.unassigned"]
    ids = [b["event_id"] for b in bodies]
    assert len(set(ids)) == len(ids) == len(outbox_events)  # one event, one id
