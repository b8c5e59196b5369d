"""Convert a lead into the client records a sales team keeps: Contact, Company and, for hot leads, a Deal.

Conversion links before it creates: a contact is found by its normalised phone or e-mail, a company by its name's
match key (the same fuzzy look-up intake uses for duplicates), so a client who writes twice is one contact and one
company. The lead keeps its own history; the deal points back at the lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.cleaning import company_block, company_key, email_domain, normalize_email, normalize_phone
from leadflow.core.dedupe import Duplicate, Match, choose_duplicate
from leadflow.core.errors import Conflict, FieldProblem, InvalidInput
from leadflow.core.fields import CleanText, Money
from leadflow.core.lead import MAX_SHORT, CleanLead
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import RulesFile
from leadflow.services.access import guard_lead
from leadflow.services.context import Leadflow
from leadflow.services.sla import SLA_TIMERS
from leadflow.store.events import Actor, append_events, new_event
from leadflow.store.lead_rows import lock_client, lock_lead
from leadflow.store.matching import find_matches
from leadflow.store.tables import companies, contacts, deals, leads, managers, timers
from leadflow.store.team_state import add_deals, add_load, record_result

ConvertTo = Literal["contact", "deal"]
DEAL_STAGE = "new"


class ClientContactIn(BaseModel):
    """The person; each field falls back to what the lead itself says."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: CleanText | None = Field(None, min_length=1, max_length=MAX_SHORT)
    phone: CleanText | None = Field(None, min_length=1, max_length=40)
    email: CleanText | None = Field(None, min_length=1, max_length=254)


# The API's first-contact body is already called ContactIn; a distinct class name keeps both OpenAPI schemas plain.
ContactIn = ClientContactIn


class CompanyIn(BaseModel):
    """The client's company; the lead's own `company` when absent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: CleanText = Field(..., min_length=1, max_length=MAX_SHORT)


class DealIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: CleanText | None = Field(
        None, min_length=1, max_length=MAX_SHORT, description="The company or person when absent."
    )
    amount: Money | None = Field(None, description="The lead's budget when absent.")


@dataclass(frozen=True, slots=True)
class Client:
    """Who the lead is, as found (not yet written): the values to store and the records they match."""

    name: str | None
    phone: str | None
    email: str | None
    company_name: str | None
    company_key: str | None
    contact: Match | None  # an existing contact, by the lead's link, phone or e-mail
    company: Match | None  # an existing company, by the lead's link or the fuzzy name match

    @property
    def owned(self) -> Duplicate | None:
        """The existing contact (or else company) that already has an owner, with a sentence saying so."""
        return choose_duplicate(m for m in (self.contact, self.company) if m is not None and m.owner_id is not None)


@dataclass(frozen=True, slots=True)
class Conversion:
    lead_id: int
    to: ConvertTo
    status: str  # the lead's status after conversion: converted, or unchanged when it stays open
    contact_id: int | None
    contact_created: bool
    company_id: int | None
    company_created: bool
    deal_id: int | None
    deal_title: str | None
    deal_amount: Decimal | None
    manager_id: int | None  # the deal's manager (the lead's, when it has one)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.lead_id,
            "status": self.status,
            "to": self.to,
            "contact": {"id": self.contact_id, "created": self.contact_created} if self.contact_id else None,
            "company": {"id": self.company_id, "created": self.company_created} if self.company_id else None,
            "deal": {"id": self.deal_id, "title": self.deal_title, "amount": self.deal_amount, "stage": DEAL_STAGE}
            if self.deal_id
            else None,
        }


def won_status(rules: RulesFile) -> str:
    """`converted`, or the funnel's first status whose outcome is won when the funnel names it otherwise."""
    keys = [s.key for s in rules.funnel]
    if "converted" in keys:
        return "converted"
    won = next((s.key for s in rules.funnel if s.outcome == "won"), None)
    if won is None:
        raise Conflict("the funnel has no status with outcome 'won' (like 'converted'): a lead cannot be converted")
    return won


def find_client(
    conn: Connection, app: Leadflow, row: RowMapping, contact: ContactIn | None, company: CompanyIn | None
) -> Client:
    """Clean what the desk typed (falling back to the lead) and find the contact and company it belongs to."""
    phone, email = _typed(contact, row, app.rules.default_region)
    name = (contact.name if contact else None) or row["name"]
    if not (phone or email or name):
        raise InvalidInput.one("contact", "the lead has no name, phone or e-mail: give the contact at least one")
    company_name = company.name if company else row["company"]
    key = company_key(company_name) if company_name else None
    if company is not None and not key:
        raise InvalidInput.one("company.name", f"'{company.name}' has no name left once legal forms are removed")
    probe = CleanLead(channel=row["channel"], phone=phone, email=email, company=company_name, company_key=key or None)
    lock_client(conn, [f"client:{kind}:{value}" for kind, value in (("phone", phone), ("email", email),
                                                                     ("company", key)) if value])  # fmt: skip
    found = find_matches(conn, probe, app.rules.open_statuses, app.rules.dedupe.company_similarity)
    contact_match = _contact(conn, row["contact_id"]) if row["contact_id"] else None
    if contact_match is None:
        chosen = choose_duplicate(m for m in found if m.kind == "contact")
        contact_match = chosen.match if chosen else None
    company_match = next((m for m in found if m.kind == "company"), None)
    if company_match is None and row["company_id"] is not None and (not key or company is None):
        company_match = _company(conn, row["company_id"])
    if company_match is None and not key and contact_match is not None and contact_match.company_id is not None:
        company_match = _company(conn, contact_match.company_id)  # the person's company, when none was named
    return Client(name, phone, email, company_name if key else None, key or None, contact_match, company_match)


def _typed(contact: ContactIn | None, row: RowMapping, default_region: str) -> tuple[str | None, str | None]:
    """The phone and e-mail the desk typed, normalised like intake does; the lead's own when not typed."""
    problems: list[FieldProblem] = []
    phone, email = row["phone"], row["email"]
    if contact is not None and contact.phone:
        try:
            phone = normalize_phone(contact.phone, row["region"] or default_region)[0]
        except InvalidInput as exc:
            problems += [FieldProblem(f"contact.{p.field}", p.reason) for p in exc.problems]
    if contact is not None and contact.email:
        try:
            email = normalize_email(contact.email)
        except InvalidInput as exc:
            problems += [FieldProblem(f"contact.{p.field}", p.reason) for p in exc.problems]
    if problems:
        raise InvalidInput(problems)
    return phone, email


def _contact(conn: Connection, contact_id: int) -> Match | None:
    r = conn.execute(
        select(contacts, managers.c.name.label("owner_name"))
        .outerjoin(managers, managers.c.id == contacts.c.owner_id)
        .where(contacts.c.id == contact_id)
    ).first()
    if r is None:
        return None
    by: Literal["phone", "email"] = "phone" if r.phone else "email"
    return Match("contact", r.id, by, r.phone or r.email or "", r.owner_id, r.owner_name, r.id, r.company_id)


def _company(conn: Connection, company_id: int) -> Match | None:
    r = conn.execute(
        select(companies, managers.c.name.label("owner_name"))
        .outerjoin(managers, managers.c.id == companies.c.owner_id)
        .where(companies.c.id == company_id)
    ).first()
    if r is None:
        return None
    return Match("company", r.id, "company", r.name, r.owner_id, r.owner_name, company_id=r.id)


def convert_lead(
    conn: Connection,
    app: Leadflow,
    lead_row: RowMapping,
    now: datetime,
    *,
    to: ConvertTo,
    contact: ContactIn | None,
    company: CompanyIn | None,
    deal: DealIn | None,
    actor: Actor,
    keep_open: bool = False,
) -> Conversion:
    """Create or link Contact and Company (and a Deal for `to="deal"`) for a locked lead, in the caller's transaction.

    The lead is closed as converted, unless `keep_open`: the quality desk hands a converted lead on to a manager,
    who then owes the client a first contact, so the lead stays open (and counted in their load) until they close it.
    """
    lead_id = lead_row["id"]
    status = lead_row["status"]
    if status not in app.rules.open_statuses:
        hint = ": restore it first" if status == "junk" else ""
        raise Conflict(f"lead {lead_id} is '{status}', not open: only open leads can be converted{hint}")
    if to == "contact" and deal is not None:
        raise InvalidInput.one("deal", "a deal is only made when converting to a deal (to: deal)")
    closing_to = None if keep_open else won_status(app.rules)
    client = find_client(conn, app, lead_row, contact, company)
    manager_id: int | None = lead_row["manager_id"]

    company_id, company_created = _company_row(conn, client, manager_id, now)
    contact_id, contact_created = _contact_row(conn, client, company_id, manager_id, now)
    deal_id = title = amount = None
    if to == "deal":
        known_company = client.company.value if client.company else client.company_name
        title = (deal.title if deal else None) or known_company or client.name or f"Lead #{lead_id}"
        amount = deal.amount if deal and deal.amount is not None else lead_row["budget"]
        deal_id = conn.execute(
            deals.insert().returning(deals.c.id),
            {"lead_id": lead_id, "contact_id": contact_id, "company_id": company_id, "manager_id": manager_id,
             "title": title, "amount": amount, "stage": DEAL_STAGE, "created_at": now},
        ).scalar_one()  # fmt: skip
        if manager_id is not None:
            add_deals(conn, manager_id, +1)

    values: dict[str, Any] = {"contact_id": contact_id, "company_id": company_id, "updated_at": now}
    if closing_to is not None:
        values["status"] = closing_to
        _close(conn, app, lead_row, closing_to, values)
    conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
    append_events(conn, [new_event(
        lead_id, "lead.converted", now, actor, to=to, status=closing_to or status,
        contact={"id": contact_id, "created": contact_created} if contact_id else None,
        company={"id": company_id, "created": company_created} if company_id else None,
        deal={"id": deal_id, "title": title, "amount": str(amount) if amount is not None else None} if deal_id else None,
    )])  # fmt: skip
    return Conversion(lead_id, to, closing_to or status, contact_id, contact_created, company_id, company_created,
                      deal_id, title, amount, manager_id if deal_id else None)  # fmt: skip


def _company_row(conn: Connection, client: Client, owner_id: int | None, now: datetime) -> tuple[int | None, bool]:
    if client.company is not None:
        if owner_id is not None:
            conn.execute(
                update(companies)
                .where(companies.c.id == client.company.id, companies.c.owner_id.is_(None))
                .values(owner_id=owner_id)
            )
        return client.company.id, False
    if client.company_name is None or client.company_key is None:
        return None, False
    new_id = conn.execute(
        companies.insert().returning(companies.c.id),
        {"name": client.company_name, "name_key": client.company_key, "block_key": company_block(client.company_key),
         "owner_id": owner_id, "created_at": now},
    ).scalar_one()  # fmt: skip
    return int(new_id), True


def _contact_row(
    conn: Connection, client: Client, company_id: int | None, owner_id: int | None, now: datetime
) -> tuple[int, bool]:
    if client.contact is not None:
        existing = conn.execute(select(contacts).where(contacts.c.id == client.contact.id)).mappings().one()
        # Fill what the contact lacks; never overwrite what someone already keeps there.
        offered = {"name": client.name, "phone": client.phone, "email": client.email, "company_id": company_id,
                   "owner_id": owner_id}  # fmt: skip
        fill: dict[str, Any] = {k: v for k, v in offered.items() if v is not None and existing[k] is None}
        if "email" in fill:
            fill["email_domain"] = email_domain(client.email)
        if fill:
            conn.execute(update(contacts).where(contacts.c.id == existing["id"]).values(**fill))
        return int(existing["id"]), False
    new_id = conn.execute(
        contacts.insert().returning(contacts.c.id),
        {"name": client.name, "phone": client.phone, "email": client.email, "company_id": company_id,
         "owner_id": owner_id, "created_at": now, "email_domain": email_domain(client.email)},
    ).scalar_one()  # fmt: skip
    return int(new_id), True


def _close(conn: Connection, app: Leadflow, row: RowMapping, status: str, values: dict[str, Any]) -> None:
    """What set_status does when a lead closes as won: load, results, the first-contact clock, waiting timers."""
    manager_id = row["manager_id"]
    if manager_id is not None:
        add_load(conn, manager_id, -1, row["budget"])
        outcome = next(s.outcome for s in app.rules.funnel if s.key == status)
        old_outcome = next((s.outcome for s in app.rules.funnel if s.key == row["status"]), None)
        if outcome is not None and old_outcome is None:
            record_result(conn, manager_id, closed=True, won=outcome == "won")
    if row["sla_state"] == "running":
        values.update(sla_state="stopped", sla_due_at=None)  # closed before first contact: reports see why
    values["queue"] = None
    # A closed lead waits for nothing: its first-contact clock, desk deadline or opening go with it.
    conn.execute(delete(timers).where(timers.c.lead_id == row["id"], timers.c.kind.in_(SLA_TIMERS)))


def give_owner(conn: Connection, conversion: Conversion, manager_id: int) -> None:
    """The manager who takes a converted lead owns its deal, and the contact and company where no one does yet."""
    if conversion.contact_id is not None:
        conn.execute(
            update(contacts)
            .where(contacts.c.id == conversion.contact_id, contacts.c.owner_id.is_(None))
            .values(owner_id=manager_id)
        )
    if conversion.company_id is not None:
        conn.execute(
            update(companies)
            .where(companies.c.id == conversion.company_id, companies.c.owner_id.is_(None))
            .values(owner_id=manager_id)
        )
    if conversion.deal_id is not None:
        taken = conn.execute(
            update(deals)
            .where(deals.c.id == conversion.deal_id, deals.c.manager_id.is_(None))
            .values(manager_id=manager_id)
        ).rowcount
        if taken:
            add_deals(conn, manager_id, +1)


_OPEN_DEALS_OF_LEAD = select(deals.c.id, deals.c.manager_id).where(
    deals.c.lead_id == bindparam("lead_id"), deals.c.closed_at.is_(None)
)


def move_deals(conn: Connection, lead_id: int, old_manager_id: int | None, new_manager_id: int) -> None:
    """The lead's open deals follow it from one manager to another, with their open-deal counts."""
    rows = conn.execute(_OPEN_DEALS_OF_LEAD, {"lead_id": lead_id}).all()
    moved = [r.id for r in rows if r.manager_id == old_manager_id]
    if not moved:
        return
    conn.execute(update(deals).where(deals.c.id.in_(moved)).values(manager_id=new_manager_id))
    if old_manager_id is not None:
        add_deals(conn, old_manager_id, -len(moved))
    add_deals(conn, new_manager_id, +len(moved))


def convert(
    app: Leadflow,
    lead_id: int,
    now: datetime,
    *,
    to: ConvertTo,
    contact: ContactIn | None = None,
    company: CompanyIn | None = None,
    deal: DealIn | None = None,
    who: Principal,
) -> dict[str, Any]:
    """A manager converts their own lead (not one waiting at the quality desk); one transaction."""
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        row = lock_lead(conn, lead_id)
        if row["queue"] == "desk":
            raise Conflict(
                f"lead {lead_id} is waiting at the quality desk: convert it there "
                f"(POST /api/v1/desk/{lead_id}/contact or /deal)"
            )
        result = convert_lead(conn, app, row, now, to=to, contact=contact, company=company, deal=deal, actor=who)
        manager = None
        if result.manager_id is not None:
            owner_row = conn.execute(
                select(managers.c.key, managers.c.name).where(managers.c.id == result.manager_id)
            ).one()
            manager = {"key": owner_row.key, "name": owner_row.name}
        answer = result.as_dict()
        if answer["deal"] is not None:
            answer["deal"]["manager"] = manager
        return answer
