"""Find existing clients a new lead may belong to: indexed look-ups only, so the cost does not grow with the base."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import BindParameter, CompoundSelect, Select, bindparam, literal, select, union_all
from sqlalchemy.engine import Connection

from leadflow.core.accounts import corporate_domain
from leadflow.core.cleaning import company_block
from leadflow.core.dedupe import Match
from leadflow.core.lead import CleanLead
from leadflow.store.fast import Fast, FastIn
from leadflow.store.tables import companies, contacts, leads, managers

_PER_KEY = 5  # a handful of matches is enough to choose an owner


def _contacts_by(column: str) -> Select[Any]:
    col = contacts.c[column]
    return (
        select(
            literal("contact").label("kind"), contacts.c.id, literal(column).label("by"), col.label("value"),
            contacts.c.owner_id, managers.c.name.label("owner_name"), contacts.c.id.label("contact_id"),
            contacts.c.company_id, contacts.c.created_at,
        )
        .outerjoin(managers, managers.c.id == contacts.c.owner_id)
        .where(col == bindparam(column))
        .order_by(contacts.c.id)
        .limit(_PER_KEY)
    )  # fmt: skip


def _leads_by(column: str, open_statuses: list[BindParameter[Any]]) -> Select[Any]:
    col = leads.c[column]
    return (
        select(
            literal("lead").label("kind"), leads.c.id, literal(column).label("by"), col.label("value"),
            leads.c.manager_id.label("owner_id"), managers.c.name.label("owner_name"), leads.c.contact_id,
            leads.c.company_id, leads.c.created_at,
        )
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(col == bindparam(column), leads.c.status.in_(open_statuses))
        .order_by(leads.c.id.desc())
        .limit(_PER_KEY)
    )  # fmt: skip


def _subquery(stmt: Select[Any]) -> Select[Any]:
    # SQLite allows LIMIT inside a UNION member only when it is wrapped in a subquery.
    return select(stmt.subquery())


def _by(columns: tuple[str, ...]) -> FastIn:
    """Contacts, then open leads, by the lead's phone, e-mail and messenger id (one statement per number of open
    statuses). A messenger id is the client's id within one channel, and only leads carry it."""

    def make(open_statuses: list[BindParameter[Any]]) -> CompoundSelect[Any]:
        parts: list[Select[Any]] = []
        for column in columns:
            if column == "messenger_id":
                by_channel = _leads_by(column, open_statuses).where(leads.c.channel == bindparam("channel"))
                parts.append(_subquery(by_channel))
            else:
                parts += [_subquery(_contacts_by(column)), _subquery(_leads_by(column, open_statuses))]
        return union_all(*parts)

    return FastIn("open", make)


_QUERIES: dict[tuple[str, ...], FastIn] = {}


def _query(columns: tuple[str, ...]) -> FastIn:
    query = _QUERIES.get(columns)
    if query is None:
        query = _QUERIES[columns] = _by(columns)
    return query


_COMPANIES = Fast(
    select(companies.c.id, companies.c.name, companies.c.name_key, companies.c.owner_id, managers.c.name)
    .outerjoin(managers, managers.c.id == companies.c.owner_id)
    .where(companies.c.block_key == bindparam("block"))
)


_ACCOUNT_NAMES = 50  # open leads of one name block compared fuzzily: a handful in practice, bounded anyway
_ACCOUNT_LEADS_BY_NAME = FastIn(
    "open",
    lambda open_statuses: (
        select(leads.c.id, leads.c.company, leads.c.company_key, leads.c.manager_id, managers.c.name,
               leads.c.company_id)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(leads.c.company_block == bindparam("block"), leads.c.status.in_(open_statuses))
        .order_by(leads.c.id.desc())
        .limit(_ACCOUNT_NAMES)
    ),
)  # fmt: skip


def _by_domain(open_statuses: list[BindParameter[Any]]) -> CompoundSelect[Any]:
    by_contact = (
        select(literal("contact").label("source"), contacts.c.id, contacts.c.owner_id, managers.c.name,
               contacts.c.company_id)
        .outerjoin(managers, managers.c.id == contacts.c.owner_id)
        .where(contacts.c.email_domain == bindparam("domain"))
        .order_by(contacts.c.id)
        .limit(_PER_KEY)
    )  # fmt: skip
    by_lead = (
        select(literal("lead").label("source"), leads.c.id, leads.c.manager_id, managers.c.name, leads.c.company_id)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(leads.c.email_domain == bindparam("domain"), leads.c.status.in_(open_statuses))
        .order_by(leads.c.id.desc())
        .limit(_PER_KEY)
    )
    return union_all(_subquery(by_contact), _subquery(by_lead))


_ACCOUNTS_BY_DOMAIN = FastIn("open", _by_domain)


def find_matches(
    conn: Connection, lead: CleanLead, open_statuses: Collection[str], similarity: int,
    free_mail: Collection[str] | None = None,
) -> list[Match]:  # fmt: skip
    """Who the lead may belong to: contacts and open leads of the same person, a recorded company, and, when
    `free_mail` is given (account matching on), other people of the same company: open leads with a company name
    like this one, and contacts and open leads with the same corporate e-mail domain."""
    found: list[Match] = []
    params: dict[str, object] = {}
    if lead.phone:
        params["phone"] = lead.phone
    if lead.email:
        params["email"] = lead.email
    if lead.messenger_id:
        params["messenger_id"] = lead.messenger_id
        params["channel"] = lead.channel
    if params:
        query = _query(tuple(k for k in ("phone", "email", "messenger_id") if k in params))
        for row in query.all(conn, list(open_statuses), params):
            found.append(Match(row.kind, row.id, row.by, row.value, row.owner_id, row.owner_name,
                               row.contact_id, row.company_id, created_at=row.created_at))  # fmt: skip
    if lead.company_key:
        rows = _COMPANIES.all(conn, {"block": company_block(lead.company_key)})
        if rows:
            best = process.extractOne(
                lead.company_key,
                [r.name_key for r in rows],
                scorer=fuzz.token_sort_ratio,
                score_cutoff=similarity,
            )
            if best is not None:
                row = rows[best[2]]
                found.append(Match("company", row.id, "company", row.name, row.owner_id, row[4],
                                   company_id=row.id, score=best[1]))  # fmt: skip
    if free_mail is not None:
        found += _accounts(conn, lead, list(open_statuses), similarity, free_mail)
    return found


def _accounts(
    conn: Connection, lead: CleanLead, open_statuses: list[str], similarity: int, free_mail: Collection[str]
) -> list[Match]:
    found: list[Match] = []
    if lead.company_key:
        rows = _ACCOUNT_LEADS_BY_NAME.all(conn, open_statuses, {"block": company_block(lead.company_key)})
        if rows:
            best = process.extractOne(lead.company_key, [r.company_key for r in rows], scorer=fuzz.token_sort_ratio,
                                      score_cutoff=similarity)  # fmt: skip
            if best is not None:
                row = rows[best[2]]
                found.append(Match("account", row.id, "company", row.company, row.manager_id, row.name,
                                   company_id=row.company_id, score=best[1], source="lead"))  # fmt: skip
    domain = corporate_domain(lead.email, free_mail)
    if domain:
        for row in _ACCOUNTS_BY_DOMAIN.all(conn, open_statuses, {"domain": domain}):
            found.append(Match("account", row.id, "domain", domain, row[2], row[3], company_id=row.company_id,
                               source=row.source))  # fmt: skip
    return found
