"""Turn stored lead rows back into the core's values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.cleaning import company_key
from leadflow.core.errors import Conflict, NotFound
from leadflow.core.lead import CleanLead, extra_of
from leadflow.store.tables import leads

_LOCK = select(leads).where(leads.c.id == bindparam("id")).with_for_update()
_LOCK_MANY = (
    select(leads).where(leads.c.id.in_(bindparam("ids", expanding=True))).order_by(leads.c.id).with_for_update()
)


def lock_lead(conn: Connection, lead_id: int) -> RowMapping:
    """The lead row, locked for the rest of the transaction (PostgreSQL; SQLite already has one writer).

    A repeat request folded into an open lead is kept as it came and changes no more: work goes to that lead.
    """
    return _workable(conn.execute(_LOCK, {"id": lead_id}).mappings().first(), lead_id)


def lock_leads(conn: Connection, lead_id: int, others: Iterable[int]) -> tuple[RowMapping, list[RowMapping]]:
    """The lead and others, locked in one statement in id order, so two writers that lock overlapping sets of
    leads never wait for each other in a circle. Returns the lead (as lock_lead checks it) and the others found."""
    ids = sorted({lead_id, *others})
    rows = {r["id"]: r for r in conn.execute(_LOCK_MANY, {"ids": ids}).mappings()}
    lead = _workable(rows.pop(lead_id, None), lead_id)
    return lead, [rows[i] for i in ids if i in rows]


def _workable(row: RowMapping | None, lead_id: int) -> RowMapping:
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    if row["merged_into_id"] is not None:
        raise Conflict(f"lead {lead_id} is a repeat request folded into lead {row['merged_into_id']}: work on that one")
    return row


def lead_row_to_clean(row: Mapping[Any, Any]) -> CleanLead:
    return CleanLead(
        channel=row["channel"], source=row["source"], external_id=row["external_id"], name=row["name"],
        phone=row["phone"], phone_type=row["phone_type"], email=row["email"], company=row["company"],
        region=row["region"], product=row["product"], language=row["language"], budget=row["budget"],
        message=row["message"],
        company_key=company_key(row["company"]) if row["company"] else None,
        score=row.get("score"),
        temperature=row.get("temperature"),
        department=row.get("department"),
        win_probability=row.get("win_probability"), utm=dict(row["utm"] or {}),
        messenger_id=row.get("messenger_id"), extra=extra_of(row.get("raw")),
    )  # fmt: skip


def identity_keys(phone: str | None, email: str | None, channel: str, messenger_id: str | None) -> list[str]:
    """The identities of the person behind a lead (their phone, e-mail, messenger id), as lock keys."""
    keys = [f"phone:{phone}"] if phone else []
    if email:
        keys.append(f"email:{email}")
    if messenger_id:
        keys.append(f"messenger:{channel}:{messenger_id}")
    return keys


_CLIENT_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def lock_client(conn: Connection, keys: Iterable[str]) -> None:
    """Hold one client's identities (phone, e-mail, company) until the transaction ends.

    Two different leads of the same new client converted at the same moment would otherwise both find no
    contact and create one each; on PostgreSQL the second now waits, then finds the first one's contact.
    SQLite runs one writer at a time, which already gives the same order.
    """
    if conn.dialect.name == "postgresql":
        for key in sorted(set(keys)):  # one order for everyone: two conversions never wait on each other
            conn.execute(_CLIENT_LOCK, {"key": key})
