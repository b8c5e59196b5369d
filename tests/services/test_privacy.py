"""Erasing and exporting one client's personal data, on real SQLite and real PostgreSQL.

The client goes through the real services first (intake, a repeat folded into the open lead, the quality desk's
conversion into contact, company and deal, a recorded call, notifications), beside another client who must not be
touched; then every column of every table is searched for what identified them.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, String, Text, cast, func, select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.conversation import InboundMessage
from leadflow.core.errors import Conflict
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Principal
from leadflow.services.automation import run_once
from leadflow.services.client_events import ClientEvent, take_client_event
from leadflow.services.context import Leadflow
from leadflow.services.conversations import take_inbound
from leadflow.services.conversion import DealIn, convert
from leadflow.services.desk import deal_at_desk
from leadflow.services.intake import receive, take_lead
from leadflow.services.privacy import (
    CANCELLED,
    ERASED,
    ERASED_EVENT,
    Client,
    client_of_contact,
    client_of_lead,
    erase_client,
    export_client,
)
from leadflow.services.replies import send_reply
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.outbox import mark_sent, retry_dead
from leadflow.store.tables import companies, contacts, deals, events, leads, outbox, timers

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, desk: true, desk_sla: 15m, hours: always}
  - {key: service, name: Service, hours: always}
managers:
  - {key: olena, name: Olena, team: sales, email: olena@example.test, capacity: 10}
  - {key: taras, name: Taras, team: sales, email: taras@example.test, capacity: 10}
  - {key: halyna, name: Halyna, team: sales, capacity: 10}
  - {key: dana, name: Dana, team: sales, role: desk}
  - {key: sam, name: Sam, team: service, email: sam@example.test, capacity: 10}
routing:
  rules:
    - {key: service, team: service, priority: 10, when: {product: service}}
    - {key: sales, team: sales, managers: [olena, taras], strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock}
automations:
  triggers:
    - key: reading-the-offer
      when: {client_event: offer_viewed}
      then:
        - task: {title: "Call {{ lead.name }} on {{ lead.phone }}", due: 1h, note: "{{ lead.email }}"}
        - notify: {to: owner, text: "{{ lead.name }} is reading the offer"}
"""

OFFICER = Principal("user", "officer", address="192.0.2.10")  # who handles data requests, from their desk

# What identified the erased client, in every spelling they or the staff used.
IVAN = {
    "name": "Іван Петренко",
    "latin": "Ivan Petrenko",
    "surname": "Петренко",
    "phone_e164": "+380671234567",
    "phone_posted": "+38 (067) 123-45-67",
    "phone_again": "067 123 45 67",
    "phone_local": "0671234567",
    "phone_digits": "380671234567",
    "email": "ivan.petrenko@example.com",
    "address": "вул. Хрещатик, 22",
    "message": "Прошу передзвонити щодо лізингу",
    "repeat": "Чекаю дзвінка, досі ніхто не подзвонив",
    "ip": "203.0.113.7",  # the browser that posted the form
}
# What reports read of a lead: it stays as it was.
KEPT = ("id", "channel", "status", "created_at", "manager_id", "contact_id", "company_id", "score", "product",
        "budget", "merged_into_id", "duplicate_of_id", "first_contact_at", "response_seconds")  # fmt: skip
OLENA = {"name": "Олена Шевченко", "phone_e164": "+380501112233", "email": "olena.shevchenko@example.org",
         "ip": "198.51.100.23"}  # fmt: skip


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


@pytest.fixture
def people(lf: Leadflow) -> dict[str, int]:
    """Ivan through the desk, a repeat and a call; Olena, another client, beside him. Returns their lead ids."""
    first = receive(lf, {
        "name": IVAN["name"], "phone": IVAN["phone_posted"], "email": "Ivan.Petrenko@Example.COM",
        "company": f"ФОП {IVAN['surname']}", "message": IVAN["message"], "address": IVAN["address"],
        "utm_source": "google", "utm_campaign": "spring-leasing",
    }, T0, idempotency_key="form-1001", sender=("key:site form", IVAN["ip"], None))  # fmt: skip
    assert first.status == "new"  # waiting at the desk
    olena = receive(lf, {"name": OLENA["name"], "phone": "050 111 22 33", "email": OLENA["email"],
                         "product": "service", "message": "Потрібен сервіс"}, T0 + timedelta(minutes=1),
                    sender=("key:site form", OLENA["ip"], None))  # fmt: skip
    deal_at_desk(lf, first.lead_id, T0 + timedelta(minutes=2), deal=DealIn(title=f"{IVAN['name']}: лізинг авто"),
                 contact=None, company=None, hand_to="olena", who=SYSTEM,
                 note=f"Іван просив дзвонити після 18:00 на {IVAN['phone_again']}")  # fmt: skip
    repeat = receive(lf, {"phone": IVAN["phone_again"], "message": IVAN["repeat"]}, T0 + timedelta(minutes=5))
    assert repeat.merged and repeat.lead_id == first.lead_id
    with lf.engine.begin() as conn:  # the first notification went out; the one about the repeat still waits
        sent = conn.execute(select(func.min(outbox.c.id)).where(outbox.c.recipient == "olena@example.test"))
        mark_sent(conn, sent.scalar_one(), T0 + timedelta(minutes=3))
    record_contact(lf, first.lead_id, "olena", "call", "connected", T0 + timedelta(minutes=8),
                   note=f"{IVAN['name']} погодився, пише на {IVAN['email']}", who=SYSTEM)  # fmt: skip
    # Days later, by e-mail only: a lead of its own, linked to the contact the desk made.
    later = take_lead(lf, LeadIn(name=IVAN["latin"], email=IVAN["email"].upper()), T0 + timedelta(days=3))
    # Then through Telegram, where he gives his phone and address, and is answered there.
    lf.channels = ChannelsConfig(telegram_bot_token="1:bot-token", telegram_webhook_secret="hook-secret")  # type: ignore[arg-type]
    chat = take_inbound(lf, [InboundMessage(
        "telegram", "9001:5", "9001", f"Це {IVAN['name']}, {IVAN['phone_again']}, {IVAN['address']}",
        name=IVAN["name"], lead={"phone": IVAN["phone_posted"]}, raw={"message": {"text": IVAN["message"]}},
    )], T0 + timedelta(days=3, minutes=1))  # fmt: skip
    assert chat[0].lead_id == first.lead_id  # his open lead with that phone
    send_reply(lf, first.lead_id, f"{IVAN['name']}, дякуємо, передзвонимо", T0 + timedelta(days=3, minutes=2),
               who=SYSTEM)  # fmt: skip
    with lf.engine.begin() as conn:  # the reply went out
        mark_sent(conn, conn.execute(select(func.max(outbox.c.id))).scalar_one(), T0 + timedelta(days=3, minutes=3))
    # He opens the offer the reply linked to; an automation gives Olena a task naming him and tells her.
    read = ClientEvent("offer-7", "offer_viewed", phone=IVAN["phone_again"],
                       url=f"https://shop.example/offer?for={IVAN['email']}")  # fmt: skip
    assert take_client_event(lf, read, T0 + timedelta(days=3, minutes=4), who=SYSTEM)["outcome"] == "attached"
    assert run_once(lf, T0 + timedelta(days=3, minutes=4)).fired == 1
    with lf.engine.connect() as conn:
        merged = conn.execute(select(leads.c.id).where(leads.c.merged_into_id == first.lead_id)).scalar_one()
    return {"first": first.lead_id, "repeat": merged, "later": later.lead_id, "olena": olena.lead_id}


def client(lf: Leadflow, lead_id: int) -> Client:
    with lf.engine.connect() as conn:
        found = client_of_lead(conn, lead_id)
    assert found is not None
    return found


def erase(lf: Leadflow, lead_id: int, now: datetime = T0 + timedelta(days=4)) -> dict[str, int]:
    with lf.engine.begin() as conn:
        found = client_of_lead(conn, lead_id)
        assert found is not None
        return erase_client(conn, found, now, OFFICER)


def everything(engine: Engine) -> Iterator[tuple[str, str, Any, str]]:
    """Every value of every column of every table, as text: (table, column, row id, text)."""
    schema = MetaData()
    schema.reflect(engine)
    with engine.connect() as conn:
        for table in schema.sorted_tables:
            key = table.c.id if "id" in table.c else next(iter(table.primary_key.columns), table.c[0])
            columns = [cast(c, Text if engine.dialect.name == "postgresql" else String).label(c.name) for c in table.c]
            for row in conn.execute(select(key.label("_key"), *columns)).mappings():
                for name, value in row.items():
                    if name != "_key" and value is not None:
                        yield table.name, name, row["_key"], _readable(value)


def _readable(value: str) -> str:
    # JSON may escape what it holds (\u0406 for І): search what it says, not how it was written.
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return json.dumps(parsed, ensure_ascii=False) if isinstance(parsed, dict | list) else value


def found(engine: Engine, needles: dict[str, str]) -> list[tuple[str, str, Any, str]]:
    lowered = {label: text.casefold() for label, text in needles.items()}
    return [(table, column, key, label) for table, column, key, value in everything(engine)
            for label, text in lowered.items() if text in value.casefold()]  # fmt: skip


def snapshot(engine: Engine, lead_ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        message_rows = conn.execute(select(outbox).order_by(outbox.c.id)).mappings()
        return {
            "leads": [dict(r) for r in conn.execute(select(leads).where(leads.c.id.in_(lead_ids)).order_by(leads.c.id))
                      .mappings()],
            "events": [dict(r) for r in conn.execute(select(events).where(events.c.lead_id.in_(lead_ids))
                                                     .order_by(events.c.id)).mappings()],
            "timers": [dict(r) for r in conn.execute(select(timers).where(timers.c.lead_id.in_(lead_ids))).mappings()],
            "outbox": [dict(r) for r in message_rows if r["payload"].get("lead", {}).get("id") in lead_ids],
        }  # fmt: skip


def report(engine: Engine) -> tuple[dict[int, str], Counter[tuple[str, str]]]:
    with engine.connect() as conn:
        rows = conn.execute(select(leads.c.id, leads.c.status, leads.c.channel)).all()
    return {r.id: r.status for r in rows}, Counter((r.status, r.channel) for r in rows)


def test_a_client_is_their_leads_contacts_and_links_whichever_way_they_are_addressed(
    lf: Leadflow, people: dict[str, int]
) -> None:
    ivan = client(lf, people["later"])
    assert ivan.lead_ids == tuple(sorted((people["first"], people["repeat"], people["later"])))
    assert ivan.phones == (IVAN["phone_e164"],) and ivan.emails == (IVAN["email"],)
    assert set(ivan.names) == {IVAN["name"], IVAN["latin"]}
    assert len(ivan.contact_ids) == 1
    with lf.engine.connect() as conn:
        assert client_of_contact(conn, ivan.contact_ids[0]) == ivan
        assert client_of_lead(conn, people["repeat"]) == ivan  # through the request folded into his lead
        assert client_of_lead(conn, 999_999) is None and client_of_contact(conn, 999_999) is None
        olena = client_of_lead(conn, people["olena"])
        assert olena is not None and olena.lead_ids == (people["olena"],) and olena.contact_ids == ()
        with pytest.raises(Conflict, match="more than 2 leads"):
            client_of_lead(conn, people["first"], limit=2)


def test_erasure_leaves_nothing_that_identifies_the_client_and_reports_still_count_the_leads(
    lf: Leadflow, people: dict[str, int]
) -> None:
    assert {label for *_, label in found(lf.engine, IVAN)} == set(IVAN)  # the search finds each of them before
    statuses, counts = report(lf.engine)
    other = snapshot(lf.engine, [people["olena"]])
    ivan = client(lf, people["first"])
    with lf.engine.connect() as conn:
        ivans = conn.execute(select(leads).where(leads.c.id.in_(ivan.lead_ids)).order_by(leads.c.id)).mappings().all()
        pending = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.status == "pending", outbox.c.recipient == "olena@example.test")).scalar_one()  # fmt: skip

    done = erase(lf, people["first"])

    assert done["leads"] == 3 and done["contacts"] == 1 and done["companies"] == 1 and done["deals"] == 1
    assert done["events"] > 0 and done["messages"] >= 2 and done["cancelled"] == pending >= 1
    assert found(lf.engine, IVAN) == []
    assert report(lf.engine) == (statuses, counts)  # the same leads, statuses and counts by status and channel
    assert snapshot(lf.engine, [people["olena"]]) == other  # the other client is untouched, to the last byte
    assert {label for *_, label in found(lf.engine, OLENA)} == set(OLENA)
    with lf.engine.connect() as conn:
        after = conn.execute(select(leads).where(leads.c.id.in_(ivan.lead_ids)).order_by(leads.c.id)).mappings().all()
        for was, now in zip(ivans, after, strict=True):
            assert {k: now[k] for k in KEPT} == {k: was[k] for k in KEPT}
            assert (now["name"], now["phone"], now["email"], now["message"], now["company"]) == (None,) * 5
        first = next(r for r in after if r["id"] == people["first"])
        assert first["utm"] == {"utm_source": "google", "utm_campaign": "spring-leasing"}  # campaign codes stay
        assert first["raw"] == {"utm_source": "google", "utm_campaign": "spring-leasing"}
        assert first["idempotency_key"] == "form-1001"  # a late redelivery finds the erased lead, writes nothing
        assert conn.execute(select(companies.c.name)).scalars().all() == [ERASED]  # a sole trader's firm
        assert conn.execute(select(deals.c.title, deals.c.amount)).one().title == ERASED
        assert conn.execute(select(contacts.c.name, contacts.c.phone, contacts.c.email)).one() == (None, None, None)
        cancelled = conn.execute(select(outbox.c.status, outbox.c.last_error, outbox.c.body).where(
            outbox.c.recipient == "olena@example.test").order_by(outbox.c.id)).all()  # fmt: skip
        assert [tuple(m) for m in cancelled] == [("sent", None, ERASED)] + [("dead", CANCELLED, ERASED)] * pending
        waiting = conn.execute(select(timers.c.lead_id)).scalars().all()
        assert waiting == [people["olena"]]  # nobody is chased to call a person who cannot be reached
        erased = conn.execute(select(events.c.lead_id, events.c.actor, events.c.data).where(
            events.c.type == ERASED_EVENT).order_by(events.c.lead_id)).all()  # fmt: skip
    assert [(e.lead_id, e.actor) for e in erased] == [(i, "user:officer") for i in ivan.lead_ids]
    assert erased[0].data == {k: v for k, v in done.items() if v}
    # The worker later moves Olena's lead along and tells its owner; nothing more goes out about Ivan.
    assert escalate_due(lf, T0 + timedelta(days=5)) == 1
    assert found(lf.engine, IVAN) == []
    # A message cancelled by the erasure cannot be put back in the queue by an operator's retry.
    with lf.engine.begin() as conn:
        stopped = conn.execute(select(outbox.c.id).where(outbox.c.last_error == CANCELLED)).scalars().first()
        with pytest.raises(Conflict, match="personal data was erased"):
            retry_dead(conn, stopped, T0 + timedelta(days=5))


def test_erasing_twice_changes_nothing_the_second_time(lf: Leadflow, people: dict[str, int]) -> None:
    first = erase(lf, people["repeat"])
    assert first["leads"] == 3
    before = list(everything(lf.engine))
    again = erase(lf, people["first"], T0 + timedelta(days=9))
    assert set(again.values()) == {0}
    assert list(everything(lf.engine)) == before  # not even another event


def test_a_company_other_clients_still_use_is_kept(lf: Leadflow) -> None:
    mine = take_lead(lf, LeadIn(name="Petro Koval", phone="0931234567", company="Acme Logistics", product="service"),
                     T0)  # fmt: skip
    theirs = take_lead(lf, LeadIn(name="Maria Bondar", phone="0951234567", company="Acme Logistics LLC",
                                  product="service"), T0)  # fmt: skip
    convert(lf, mine.lead_id, T0 + timedelta(minutes=1), to="contact", who=SYSTEM)
    convert(lf, theirs.lead_id, T0 + timedelta(minutes=1), to="contact", who=SYSTEM)
    done = erase(lf, mine.lead_id)
    assert (done["contacts"], done["companies"]) == (1, 0)
    with lf.engine.connect() as conn:
        assert conn.execute(select(companies.c.name)).scalars().all() == ["Acme Logistics"]
        names = set(conn.execute(select(contacts.c.name)).scalars())
    assert names == {None, "Maria Bondar"}
    assert found(lf.engine, {"name": "Petro Koval", "phone": "+380931234567"}) == []
    assert len(found(lf.engine, {"name": "Maria Bondar"})) > 0


def test_the_export_holds_the_client_and_nobody_else(lf: Leadflow, people: dict[str, int]) -> None:
    ivan = client(lf, people["first"])
    with lf.engine.connect() as conn:
        export = export_client(conn, ivan)
    text = json.dumps(export, ensure_ascii=False)  # plain JSON: times, amounts and all
    assert [lead["id"] for lead in export["leads"]] == list(ivan.lead_ids)
    first = next(lead for lead in export["leads"] if lead["id"] == people["first"])
    assert first["name"] == IVAN["name"] and first["raw"]["address"] == IVAN["address"]
    types = [e["type"] for e in first["events"]]
    assert {"lead.received", "lead.converted", "lead.repeat", "lead.contacted"} <= set(types)
    assert first["deals"][0]["title"] == f"{IVAN['name']}: лізинг авто" and first["deals"][0]["amount"] is None
    assert first["activities"][0]["note"].startswith(IVAN["name"])
    assert len(first["messages"]) >= 2 and all("recipient" not in m for m in first["messages"])
    assert isinstance(first["created_at"], str) and first["created_at"].startswith("2026-11-23T10:00")
    assert [c["email"] for c in export["contacts"]] == [IVAN["email"]]
    assert [c["name"] for c in export["companies"]] == [f"ФОП {IVAN['surname']}"]
    for value in (*OLENA.values(), "050 111 22 33", "Потрібен сервіс"):
        assert value.casefold() not in text.casefold()
    assert str(people["olena"]) not in [str(lead["id"]) for lead in export["leads"]]
