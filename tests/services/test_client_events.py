"""What the client did, reported by another system, on SQLite and PostgreSQL: it joins the client's open lead as the
lead event client.<type>, once; a client with no open lead is kept unmatched with the reason."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from leadflow.core.errors import InvalidInput
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.client_events import CLIENT_EVENT_TYPES, ClientEvent, take_client_event
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import receive
from leadflow.services.leads import set_status
from leadflow.store.tables import client_events, events, leads, managers
from leadflow.store.writer import GroupWriter
from tests.support import THREE_MANAGERS

CRM = Principal("key", "booking calendar", id=1, scope="intake")


@pytest.fixture
def app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


def new_lead(app: Leadflow, **fields: Any) -> int:
    return receive(app, {"name": "Олена", "product": "credit", **fields}, utcnow()).lead_id


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def lead_events(app: Leadflow, lead_id: int) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(events).where(events.c.lead_id == lead_id, events.c.type.like("client.%"))
                                 .order_by(events.c.id)).all())  # fmt: skip


def test_the_types_are_the_six_the_automations_know() -> None:
    assert CLIENT_EVENT_TYPES == ("email_opened", "link_clicked", "page_visited", "form_resubmitted",
                                  "meeting_booked", "offer_viewed")  # fmt: skip


def test_an_event_for_a_named_lead_is_its_event_with_what_was_reported(app: Leadflow) -> None:
    lead_id = new_lead(app, phone="+380671110001")
    viewed = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    now = utcnow()
    taken = take_client_event(app, ClientEvent("offer-77:view-1", "offer_viewed", viewed, lead_id=lead_id,
                                               url="https://offers.example.ua/77", page="offer",
                                               details={"offer_id": "77", "seconds": 42}), now, who=CRM)  # fmt: skip
    assert taken == {"id": taken["id"], "outcome": "attached", "lead_id": lead_id, "reason": "the lead named",
                     "repeat": False}  # fmt: skip
    [event] = lead_events(app, lead_id)
    assert event.type == "client.offer_viewed" and event.actor == "key:booking calendar" and event.at == now
    assert event.data == {"event_id": "offer-77:view-1", "client_event_id": taken["id"], "source": "key:booking calendar",
                          "reason": "the lead named", "url": "https://offers.example.ua/77", "page": "offer",
                          "details": {"offer_id": "77", "seconds": 42}, "at": "2026-03-02T09:30:00+00:00"}  # fmt: skip
    with app.engine.connect() as conn:
        row = conn.execute(select(client_events)).one()
    assert (row.external_id, row.type, row.lead_id, row.outcome, row.at, row.received_at, row.actor) == (
        "offer-77:view-1", "offer_viewed", lead_id, "attached", viewed, now, "key:booking calendar")  # fmt: skip
    assert row.data["url"] == "https://offers.example.ua/77"
    assert row.data["details"] == {"offer_id": "77", "seconds": 42}


def test_the_client_is_found_by_a_phone_written_another_way_and_by_an_e_mail(app: Leadflow) -> None:
    by_phone = new_lead(app, phone="+380671110001")
    by_email = new_lead(app, email="olena.k@example.com")
    taken = take_client_event(app, ClientEvent("cal-1", "meeting_booked", phone="067 111 00 01"), utcnow(), who=CRM)
    assert (taken["outcome"], taken["lead_id"]) == ("attached", by_phone)
    assert taken["reason"] == "the client's open lead, found by +380671110001"
    taken = take_client_event(app, ClientEvent("cal-2", "meeting_booked", phone="380671110001"), utcnow(), who=CRM)
    assert taken["lead_id"] == by_phone  # digits without the plus, as integrations send them: as intake reads them
    taken = take_client_event(app, ClientEvent("site-1", "page_visited", email="  Olena.K@Example.COM"), utcnow(),
                              who=CRM)  # fmt: skip
    assert (taken["outcome"], taken["lead_id"]) == ("attached", by_email)
    assert [e.type for e in lead_events(app, by_phone)] == ["client.meeting_booked"] * 2
    assert [e.type for e in lead_events(app, by_email)] == ["client.page_visited"]


def test_the_newest_open_lead_takes_it_and_a_merged_one_leads_to_the_lead_it_joined(app: Leadflow) -> None:
    old = new_lead(app, phone="+380671110001", external_id="a")
    set_status(app, old, "lost", utcnow(), who=SYSTEM, reason="price")
    current = new_lead(app, phone="+380671110001", external_id="b")
    taken = take_client_event(app, ClientEvent("v-1", "page_visited", phone="+380671110001"), utcnow(), who=CRM)
    assert taken["lead_id"] == current
    assert new_lead(app, phone="+380671110001", external_id="c") == current  # a repeat: folded into the open lead
    with app.engine.connect() as conn:
        folded = conn.execute(select(leads.c.id).where(leads.c.merged_into_id == current)).scalar_one()
    taken = take_client_event(app, ClientEvent("v-2", "form_resubmitted", lead_id=folded), utcnow(), who=CRM)
    assert taken["lead_id"] == current and taken["reason"] == f"lead {folded} was folded into lead {current}"


def test_a_repeat_writes_nothing_and_gets_the_first_answer(app: Leadflow) -> None:
    lead_id = new_lead(app, phone="+380671110001")
    first = take_client_event(app, ClientEvent("e-1", "link_clicked", phone="+380671110001"), utcnow(), who=CRM)
    # The reporter sends it again, even with other fields: the id is the event.
    again = take_client_event(app, ClientEvent("e-1", "offer_viewed", lead_id=999), utcnow() + timedelta(minutes=5),
                              who=CRM)  # fmt: skip
    assert again == {**first, "repeat": True}
    assert count(app, client_events) == 1 and len(lead_events(app, lead_id)) == 1
    unmatched = take_client_event(app, ClientEvent("e-2", "page_visited", phone="+380500000000"), utcnow(), who=CRM)
    assert take_client_event(app, ClientEvent("e-2", "page_visited", lead_id=lead_id), utcnow(), who=CRM) == {
        **unmatched, "repeat": True}  # fmt: skip
    assert count(app, client_events) == 2 and len(lead_events(app, lead_id)) == 1


def test_an_unknown_client_is_kept_unmatched_with_the_reason(app: Leadflow) -> None:
    new_lead(app, phone="+380671110001")
    before = count(app, events)
    taken = take_client_event(app, ClientEvent("x-1", "page_visited", phone="+380 50 123 45 67",
                                               email="stranger@example.com"), utcnow(), who=CRM)  # fmt: skip
    assert taken["outcome"] == "unmatched" and taken["lead_id"] is None
    assert taken["reason"] == "no client with this phone or e-mail: +380501234567 or stranger@example.com"
    taken = take_client_event(app, ClientEvent("x-2", "page_visited", lead_id=123456), utcnow(), who=CRM)
    assert (taken["outcome"], taken["reason"]) == ("unmatched", "lead 123456 does not exist")
    taken = take_client_event(app, ClientEvent("x-3", "page_visited", phone="not a phone"), utcnow(), who=CRM)
    assert taken["outcome"] == "unmatched" and taken["reason"].startswith("no client with this phone or e-mail: phone")
    with app.engine.connect() as conn:
        kept = conn.execute(select(client_events.c.external_id, client_events.c.outcome, client_events.c.data)
                            .order_by(client_events.c.id)).all()  # fmt: skip
    assert [(k.external_id, k.outcome) for k in kept] == [("x-1", "unmatched"), ("x-2", "unmatched"),
                                                          ("x-3", "unmatched")]  # fmt: skip
    assert kept[0].data == {"phone": "+380 50 123 45 67", "email": "stranger@example.com"}  # as reported
    assert count(app, events) == before  # no lead event for an event on no lead


def test_a_client_whose_leads_are_all_closed_is_unmatched(app: Leadflow) -> None:
    lead_id = new_lead(app, phone="+380671110001")
    set_status(app, lead_id, "lost", utcnow(), who=SYSTEM, reason="price")
    taken = take_client_event(app, ClientEvent("c-1", "offer_viewed", phone="0671110001"), utcnow(), who=CRM)
    assert taken["outcome"] == "unmatched" and taken["lead_id"] is None
    assert taken["reason"] == "no open lead for +380671110001: the client's leads are closed"
    assert lead_events(app, lead_id) == []
    # Named by its id, a closed lead still takes it: it is the lead the client acted on.
    named = take_client_event(app, ClientEvent("c-2", "offer_viewed", lead_id=lead_id), utcnow(), who=CRM)
    assert (named["outcome"], named["reason"]) == ("attached", "the lead named (lost, closed)")


def test_a_manager_adds_only_to_leads_they_may_work(app: Leadflow) -> None:
    lead_id = new_lead(app, phone="+380671110001")
    with app.engine.connect() as conn:
        owner = conn.execute(select(leads.c.manager_id).where(leads.c.id == lead_id)).scalar_one()
        other = conn.execute(select(managers.c.id).where(managers.c.id != owner, managers.c.active)).scalars().first()
    stranger = Principal("user", "someone", id=5, grants=(Grant("manager"),), manager_id=other)
    taken = take_client_event(app, ClientEvent("m-1", "page_visited", lead_id=lead_id), utcnow(), who=stranger)
    assert (taken["outcome"], taken["reason"]) == ("unmatched", f"lead {lead_id} does not exist")
    taken = take_client_event(app, ClientEvent("m-2", "page_visited", phone="+380671110001"), utcnow(), who=stranger)
    assert taken["outcome"] == "unmatched" and "user:someone may add to" in taken["reason"]
    owner_user = Principal("user", "owner", id=6, grants=(Grant("manager"),), manager_id=owner)
    taken = take_client_event(app, ClientEvent("m-3", "page_visited", lead_id=lead_id), utcnow(), who=owner_user)
    assert taken["outcome"] == "attached"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (ClientEvent("", "page_visited", phone="+380671110001"), "id"),
        (ClientEvent("a-1", "page_opened", phone="+380671110001"), "type"),
        (ClientEvent("a-1", "page_visited"), "client"),
        (ClientEvent("open:m1", "email_opened", phone="+380671110001"), "id"),
        (ClientEvent("a-1", "page_visited", phone="1" * 41), "phone"),
    ],
)
def test_what_cannot_be_an_event_is_refused_and_nothing_is_written(
    app: Leadflow, event: ClientEvent, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        take_client_event(app, event, utcnow(), who=CRM)
    assert field in [p.field for p in refused.value.problems]
    assert count(app, client_events) == 0


@pytest.mark.parametrize("writer", [False, True], ids=["own transactions", "group writer"])
def test_the_same_event_sent_twice_at_once_is_kept_once(app: Leadflow, writer: bool) -> None:
    lead_id = new_lead(app, phone="+380671110001")
    if writer:
        app.writer = GroupWriter(app.engine).start()
    start = threading.Barrier(4)
    answers: list[dict[str, Any]] = []

    def post() -> None:
        start.wait()
        answers.append(take_client_event(app, ClientEvent("twice", "meeting_booked", phone="+380671110001"),
                                         utcnow(), who=CRM))  # fmt: skip

    try:
        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if app.writer is not None:
            app.writer.close()
            app.writer = None
    assert len(answers) == 4
    assert {a["id"] for a in answers} == {answers[0]["id"]} and sorted(a["repeat"] for a in answers) == [
        False, True, True, True]  # fmt: skip
    assert count(app, client_events) == 1 and len(lead_events(app, lead_id)) == 1
