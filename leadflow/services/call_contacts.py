"""Calls as contacts: a call answered on, or made from, a manager's extension is that manager's contact with the
client (channels/inbound/calls.py says whose, from the managers' `extension:` in the rules file)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.channels.inbound.calls import CallContact, call_contact
from leadflow.core.conversation import InboundMessage
from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.policy import Principal
from leadflow.services.context import Leadflow
from leadflow.services.desk import hand_to, manager_by_key
from leadflow.services.sla import record_contact_in
from leadflow.store.lead_rows import lock_lead
from leadflow.store.tables import managers

CALLS = Principal("system", "calls")


def call_contact_in(
    conn: Connection, app: Leadflow, item: InboundMessage, lead_id: int, new: bool, now: datetime
) -> str:
    """Record the contact a call was (channels/inbound/calls.py says whose, from the managers' `extension:`), and
    say what became of it. A call that made a new lead was answered by a manager who has now spoken to the client:
    the lead is theirs, whoever routing chose, and already contacted."""
    extensions = dict(conn.execute(select(managers.c.extension, managers.c.key).where(
        managers.c.extension.is_not(None), managers.c.active.is_(True))).all())  # fmt: skip
    contact, why = call_contact(item, extensions)
    if contact is None:
        return why
    try:
        with conn.begin_nested():
            if new:
                _give_to_answerer(conn, app, lead_id, contact, now)
            record_contact_in(conn, app, lead_id, contact.manager_key, "call", contact.outcome, now, contact.note,
                              who=CALLS, duration_seconds=contact.talk_seconds)  # fmt: skip
    except (Conflict, InvalidInput, NotFound) as refused:
        return f"kept on the thread, not counted as {contact.manager_key}'s contact: {refused}"
    return f"{contact.manager_key}'s contact: call, {contact.outcome}"


def _give_to_answerer(conn: Connection, app: Leadflow, lead_id: int, contact: CallContact, now: datetime) -> None:
    row = lock_lead(conn, lead_id)
    if row["status"] not in app.rules.open_statuses or row["queue"] is not None:
        return  # junk, or waiting for the quality desk, which decides
    target = manager_by_key(conn, app, contact.manager_key, "extension")
    if row["manager_id"] != target.id:
        hand_to(conn, app, row, target, now, f"{contact.note}: the client has spoken to {target.name}")
