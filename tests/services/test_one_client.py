"""One client, one caller: a contact reaches the client (every open lead of theirs), repeats fold into the open
lead, and a former owner's late call counts. On real SQLite and PostgreSQL, with a clock the test moves."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from leadflow.core.errors import Conflict
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.intake import IdempotencyKeyReused, receive, take_lead
from leadflow.services.leads import get_lead, set_status
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import activities, leads, managers, outbox, timers

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

TEAM = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: head}
managers:
  - {key: olena, name: Olena Koval, team: sales, email: olena@example.test}
  - {key: taras, name: Taras Melnyk, team: sales, email: taras@example.test}
  - {key: andrii, name: Andrii Bondar, team: sales, email: andrii@example.test}
  - {key: head, name: Halyna, team: sales}
routing:
  rules:
    - {key: all, team: sales, managers: [olena, taras, andrii], strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock, chain: {max_hops: 3}}
"""
NO_FOLDING = TEAM + "dedupe: {fold_window: off}\n"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def owner(lf: Leadflow, lead_id: int) -> str | None:
    return get_lead(lf, lead_id, who=SYSTEM)["manager_key"]


def table_count(lf: Leadflow, table: object, *where: object) -> int:
    with lf.engine.connect() as conn:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int(conn.execute(query.where(*where)).scalar_one())  # type: ignore[arg-type]


def test_one_connected_call_satisfies_every_open_lead_of_the_client(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(NO_FOLDING)
    first = take_lead(lf, LeadIn(name="Ivan", phone="+380671234567"), at(0))
    second = take_lead(lf, LeadIn(name="Ivan", phone="067 123 45 67", product="leasing"), at(1))
    third = take_lead(lf, LeadIn(name="Ivan P.", email="ivan@example.com", phone="0671234567"), at(2))
    assert {owner(lf, x.lead_id) for x in (first, second, third)} == {"olena"}  # duplicates go to the owner
    done = record_contact(lf, first.lead_id, "olena", "call", "connected", at(3), who=SYSTEM)
    assert done["covered"] == [second.lead_id, third.lead_id]
    assert escalate_due(lf, at(60)) == 0  # nobody else will ring Ivan
    for lead in (second, third):
        detail = get_lead(lf, lead.lead_id, who=SYSTEM)
        assert detail["manager_key"] == "olena" and detail["sla_state"] == "met" and detail["status"] == "contacted"
        covered = detail["events"][-1]
        assert covered["type"] == "lead.contacted" and covered["data"]["via"] == first.lead_id
        assert covered["data"]["reason"] == (
            f"the client was reached through lead #{first.lead_id}: a connected call by Olena Koval"
        )
    assert table_count(lf, timers) == 0
    with lf.engine.connect() as conn:  # the call is counted once, for the manager who made it
        assert conn.execute(select(managers.c.first_contacts).where(managers.c.key == "olena")).scalar() == 1


def test_an_attempt_does_not_cover_the_other_leads_and_a_later_lead_of_a_contacted_client_does(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(NO_FOLDING)
    first = take_lead(lf, LeadIn(phone="+380671234567"), at(0))
    second = take_lead(lf, LeadIn(phone="+380671234567"), at(1))
    assert record_contact(lf, first.lead_id, "olena", "call", "no_answer", at(2), who=SYSTEM)["covered"] == []
    assert get_lead(lf, second.lead_id, who=SYSTEM)["sla_state"] == "running"
    record_contact(lf, second.lead_id, "olena", "message", "sent", at(3), who=SYSTEM)
    assert get_lead(lf, first.lead_id, who=SYSTEM)["sla_state"] == "met"  # the link works both ways
    # A closed lead of the client is left alone.
    third = take_lead(lf, LeadIn(phone="+380671234567"), at(4))
    set_status(lf, third.lead_id, "lost", at(5), reason="changed their mind", who=SYSTEM)
    assert record_contact(lf, first.lead_id, "olena", "call", "connected", at(6), who=SYSTEM)["covered"] == []
    assert get_lead(lf, third.lead_id, who=SYSTEM)["first_contact_at"] is None


def test_repeats_within_the_window_fold_into_the_open_lead(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(TEAM)
    first = take_lead(lf, LeadIn(name="Ivan", phone="+380671234567"), at(0))
    again = take_lead(lf, LeadIn(phone="067-123-45-67", email="ivan@example.com", message="Where is my call?"), at(5))
    assert (again.lead_id, again.merged, again.created, again.manager_key) == (first.lead_id, True, False, "olena")
    assert again.reason.startswith(f"folded into open lead #{first.lead_id}: the same client (phone +380671234567)")
    by_mail = take_lead(lf, LeadIn(email="IVAN@example.com"), at(6))
    assert by_mail.lead_id == first.lead_id and by_mail.merged
    assert escalate_due(lf, at(11)) == 1  # one chain: the open lead's own
    assert {owner(lf, first.lead_id)} == {"taras"}
    detail = get_lead(lf, first.lead_id, who=SYSTEM)
    assert detail["email"] == "ivan@example.com" and detail["message"] == "Where is my call?"  # blanks filled
    assert [e["type"] for e in detail["events"]].count("lead.repeat") == 2
    with lf.engine.connect() as conn:
        merged = conn.execute(select(leads.c.id, leads.c.status, leads.c.merged_into_id, leads.c.raw)
                              .where(leads.c.status == "merged").order_by(leads.c.id)).all()  # fmt: skip
        told = conn.execute(select(outbox.c.recipient).where(outbox.c.payload["event"].as_string() == "lead.repeat"))
        assert sorted(r[0] for r in told) == ["olena@example.test", "olena@example.test"]
    assert [(m.status, m.merged_into_id) for m in merged] == [("merged", first.lead_id)] * 2
    assert merged[0].raw["message"] == "Where is my call?"  # every request is kept as it came
    # Outside the window: a lead of its own, sent to the owner as a duplicate; a contact on either covers both.
    later = take_lead(lf, LeadIn(phone="+380671234567", product="leasing"), at(60 * 25))
    assert later.created and not later.merged and later.manager_key == "taras"
    assert record_contact(lf, later.lead_id, "taras", "call", "connected", at(60 * 25 + 1), who=SYSTEM)["covered"] == [
        first.lead_id
    ]


def test_a_repeat_of_a_closed_lead_is_a_new_lead(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(TEAM)
    first = take_lead(lf, LeadIn(phone="+380671234567"), at(0))
    set_status(lf, first.lead_id, "lost", at(1), reason="no budget", who=SYSTEM)
    again = take_lead(lf, LeadIn(phone="+380671234567"), at(2))
    assert again.created and not again.merged and again.lead_id != first.lead_id


def test_a_redelivered_repeat_answers_as_the_first_time(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(TEAM)
    first = take_lead(lf, LeadIn(phone="+380671234567"), at(0))
    repeat = take_lead(lf, LeadIn(phone="+380671234567", message="me again"), at(1), idempotency_key="k-2")
    redelivered = take_lead(lf, LeadIn(phone="+380671234567", message="me again"), at(2), idempotency_key="k-2")
    assert (redelivered.lead_id, redelivered.merged, redelivered.created) == (first.lead_id, True, False)
    assert repeat.lead_id == first.lead_id
    assert table_count(lf, leads) == 2


def test_an_idempotency_key_reused_for_another_lead_is_refused(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(TEAM)
    receive(lf, {"name": "Ivan", "phone": "+380671234567", "product": "credit"}, at(0), idempotency_key="k-1")
    same = receive(lf, {"product": "credit", "phone": "+380671234567", "name": "Ivan"}, at(1), idempotency_key="k-1")
    assert not same.created  # the same request in another field order is the same request
    with pytest.raises(IdempotencyKeyReused, match="Idempotency-Key 'k-1' was already used for a different request"):
        receive(lf, {"name": "Petro", "phone": "+380501112233", "product": "leasing"}, at(2), idempotency_key="k-1")
    receive(lf, {"channel": "crm", "external_id": "A-7", "phone": "+380931112233"}, at(3))
    with pytest.raises(IdempotencyKeyReused, match="external_id 'A-7' of channel 'crm' was already used"):
        receive(lf, {"channel": "crm", "external_id": "A-7", "phone": "+380931112244"}, at(4))
    assert table_count(lf, leads) == 2


def test_the_first_owners_late_call_is_recorded_and_the_current_owner_told(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(TEAM)
    lead = take_lead(lf, LeadIn(name="Ivan", phone="+380671234567"), at(0))
    assert escalate_due(lf, at(11)) == 1 and owner(lf, lead.lead_id) == "taras"
    done = record_contact(lf, lead.lead_id, "olena", "call", "connected", at(12), who=SYSTEM)
    assert done["first_contact"] and done["late"] and done["sla_state"] == "met"
    assert escalate_due(lf, at(30)) == 0 and owner(lf, lead.lead_id) == "taras"
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    contacted = detail["events"][-1]
    assert (contacted["type"], contacted["data"]["manager"], contacted["data"]["owner"]) == (
        "lead.contacted",
        "olena",
        "taras",
    )
    assert contacted["data"]["reason"] == (
        "Olena Koval reached the client after the lead had moved on; the lead stays with Taras Melnyk"
    )
    with lf.engine.connect() as conn:
        made_by = conn.execute(select(managers.c.key).join(activities, activities.c.manager_id == managers.c.id))
        assert made_by.scalar() == "olena"
        told = conn.execute(select(outbox.c.recipient, outbox.c.subject)
                            .where(outbox.c.payload["event"].as_string() == "lead.contacted_by_other")).all()  # fmt: skip
    assert [t.recipient for t in told] == ["taras@example.test"]
    assert "Olena Koval" in told[0].subject
    with pytest.raises(Conflict, match="Andrii Bondar has never owned lead 1: it is with Taras Melnyk"):
        record_contact(lf, lead.lead_id, "andrii", "call", "connected", at(13), who=SYSTEM)


def test_a_folded_request_is_kept_as_it_came_and_work_goes_to_the_open_lead(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(TEAM)
    first = take_lead(lf, LeadIn(phone="+380671234567"), at(0))
    take_lead(lf, LeadIn(phone="+380671234567", message="again"), at(1))
    for change in (
        lambda: set_status(lf, 2, "lost", at(2), reason="x", who=SYSTEM),
        lambda: record_contact(lf, 2, "olena", "call", "connected", at(2), who=SYSTEM),
    ):
        with pytest.raises(Conflict, match=f"lead 2 is a repeat request folded into lead {first.lead_id}"):
            change()
    assert get_lead(lf, 2, who=SYSTEM)["status"] == "merged"


def test_two_managers_reaching_one_client_at_the_same_moment_both_succeed(
    make_app: Callable[[str], Leadflow],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lf = make_app(NO_FOLDING)
    pairs = []
    for i in range(8):  # two leads per client, linked by phone, by e-mail, or only by being duplicates
        a = take_lead(lf, LeadIn(phone=f"+38067000{i:04d}", email=f"c{i}@example.com"), at(0))
        b = take_lead(lf, LeadIn(phone=f"+38067000{i:04d}") if i % 2 else LeadIn(email=f"c{i}@example.com"), at(1))
        pairs.append((a.lead_id, b.lead_id))
    with lf.engine.begin() as conn:  # the owners as they are now: round robin spread the clients out
        owners = dict(conn.execute(select(leads.c.id, managers.c.key).join(managers, managers.c.id == leads.c.manager_id)).all())  # fmt: skip
    jobs = [(lead, owners[lead]) for pair in pairs for lead in pair]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda job: record_contact(lf, job[0], job[1], "call", "connected", at(2), who=SYSTEM), jobs)
        )
    assert all(r["first_contact"] or r["covered"] == [] for r in results)
    for a, b in pairs:
        assert {get_lead(lf, a, who=SYSTEM)["sla_state"], get_lead(lf, b, who=SYSTEM)["sla_state"]} == {"met"}
    assert escalate_due(lf, at(60)) == 0
