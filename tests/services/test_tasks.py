"""Tasks through the services, on real SQLite and PostgreSQL: made with their overdue timer, closed once, handed
over, moved with the lead's owner, told when overdue, and listed to each person as far as they may see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from leadflow.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal, automation
from leadflow.services import tasks
from leadflow.services.context import Leadflow
from leadflow.services.desk import assign_by_hand
from leadflow.services.intake import take_lead
from leadflow.store.tables import events, managers, outbox, teams, timers

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv, 05:00 in New York
RULES = """
default_region: UA
default_timezone: Europe/Kyiv
default_language: en
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: west, name: West, timezone: America/New_York, head: wanda, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.test, languages: [en], products: [credit]}
  - {key: bohdan, name: Bohdan, team: sales, products: [leasing]}
  - {key: halyna, name: Halyna, team: sales, products: [none]}
  - {key: wanda, name: Wanda, team: west, email: wanda@example.test, products: [yacht]}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
    - {key: yacht, team: west, managers: [wanda], when: {product: yacht}, strategy: round_robin}
sla:
  enabled: false
"""


class World:
    def __init__(self, app: Leadflow) -> None:
        self.app = app
        with app.engine.connect() as conn:
            self.ids = {r.key: r.id for r in conn.execute(select(managers.c.key, managers.c.id))}
            self.teams = {r.key: r.id for r in conn.execute(select(teams.c.key, teams.c.id))}
        self.anna_lead = take_lead(app, LeadIn(name="Ivan", phone="0671234567", product="credit"), T0).lead_id
        self.bohdan_lead = take_lead(app, LeadIn(name="Olha", phone="0501112233", product="leasing"), T0).lead_id
        self.wanda_lead = take_lead(app, LeadIn(name="John", phone="0631112233", product="yacht"), T0).lead_id

    def manager(self, key: str) -> Principal:
        return Principal("user", key, 10 + self.ids[key], (Grant("manager"),), manager_id=self.ids[key])

    def head(self, key: str, team: str) -> Principal:
        grants = (Grant("head", self.teams[team], team), Grant("manager"))
        return Principal("user", key, 10 + self.ids[key], grants, manager_id=self.ids[key])


ADMIN = Principal("user", "root", 1, (Grant("admin"),))


@pytest.fixture
def world(make_app: Callable[[str], Leadflow]) -> World:
    return World(make_app(RULES))


def _timers(app: Leadflow) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(timers).where(timers.c.kind == tasks.TASK_OVERDUE)).mappings())


def _events(app: Leadflow, lead_id: int, prefix: str = "task.") -> list[tuple[str, str | None, dict[str, Any]]]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.actor, events.c.data)
                            .where(events.c.lead_id == lead_id).order_by(events.c.id)).all()  # fmt: skip
    return [(r.type, r.actor, r.data) for r in rows if r.type.startswith(prefix)]


def test_a_task_with_a_due_time_is_made_with_its_overdue_timer_and_event(world: World) -> None:
    anna = world.manager("anna")
    due = T0 + timedelta(hours=2)
    task = tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="  Call back   about rates ",
                             due_at=due, note="asked for the afternoon")  # fmt: skip
    assert task["title"] == "Call back about rates" and task["status"] == "open" and task["kind"] == "task"
    assert task["manager"] == {"key": "anna", "name": "Anna"} and task["lead_name"] == "Ivan"
    assert (task["source"], task["reason"], task["actor"]) == ("manual", "set by user:anna", "user:anna")
    assert task["follows_owner"] is True  # set for the lead's owner: it goes where the lead goes
    assert task["due_at_local"] == "2026-11-24T14:00:00+02:00" and task["overdue"] is False
    [timer] = _timers(world.app)
    assert (timer["lead_id"], timer["due_at"], timer["data"], timer["ref"]) == (
        world.anna_lead, due, {"task": task["id"]}, f"task:{task['id']}")  # fmt: skip
    [(kind, actor, data)] = _events(world.app, world.anna_lead)
    assert (kind, actor) == ("task.created", "user:anna")
    assert data == {"task": task["id"], "title": "Call back about rates", "manager": "anna",
                    "due_at": due.isoformat(), "kind": "task", "source": "manual", "reason": "set by user:anna"}  # fmt: skip
    # Without a due time there is nothing to be late for: no timer.
    tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Send the contract", due_at=None)
    assert len(_timers(world.app)) == 1


def test_an_automation_makes_its_task_in_its_own_transaction_with_its_reason(world: World) -> None:
    who = automation("review-after-win")
    with world.app.engine.begin() as conn:
        task_id = tasks.create_task_in(
            conn, world.app, lead_id=world.anna_lead, manager_id=world.ids["anna"], title="Ask for a review",
            due_at=T0 + timedelta(days=1), now=T0, who=who, reason="trigger review-after-win: the lead was won",
            source="review-after-win", kind="call", cadence_attempt=None,
        )  # fmt: skip
    [item] = tasks.list_tasks(world.app, T0, who=ADMIN)["items"]
    assert item["id"] == task_id and item["actor"] == "system:automation:review-after-win" and item["kind"] == "call"
    assert item["reason"] == "trigger review-after-win: the lead was won" and item["follows_owner"] is False
    [(_, actor, data)] = _events(world.app, world.anna_lead)
    assert actor == "system:automation:review-after-win" and data["automation"] == ["review-after-win"]


@pytest.mark.parametrize("kind", ["done", "cancelled"])
def test_closing_a_task_deletes_its_timer_and_a_second_close_is_refused(world: World, kind: str) -> None:
    anna = world.manager("anna")
    made = tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Call back",
                             due_at=T0 + timedelta(hours=1), note="before lunch")  # fmt: skip
    later = T0 + timedelta(minutes=30)
    if kind == "done":
        closed = tasks.complete_task(world.app, made["id"], later, who=anna, note="called, agreed on Friday")
        assert closed["note"] == "before lunch\ncalled, agreed on Friday"
    else:
        closed = tasks.cancel_task(world.app, made["id"], later, who=anna, reason="the client called first")
        assert closed["note"] == "before lunch\nthe client called first"
    assert (closed["status"], closed["done_at"], closed["closed_by"]) == (kind, later, "user:anna")
    assert _timers(world.app) == []
    said = _events(world.app, world.anna_lead)[-1]
    assert said[0] == f"task.{kind}" and said[2]["task"] == made["id"] and said[2]["manager"] == "anna"
    with pytest.raises(Conflict, match=f"task {made['id']} is {kind} already"):
        tasks.complete_task(world.app, made["id"], later, who=anna)
    with pytest.raises(Conflict):
        tasks.cancel_task(world.app, made["id"], later, who=anna, reason="again")
    assert len(_events(world.app, world.anna_lead)) == 2  # created, closed: nothing more


def test_a_cancellation_says_why(world: World) -> None:
    made = tasks.create_task(world.app, T0, who=SYSTEM, lead_id=world.anna_lead, title="Call", due_at=None)
    with pytest.raises(InvalidInput, match="say why"):
        tasks.cancel_task(world.app, made["id"], T0, who=SYSTEM, reason="  ")
    assert tasks.list_tasks(world.app, T0, who=SYSTEM)["items"][0]["status"] == "open"


def test_who_may_close_a_task(world: World) -> None:
    # Anna's lead goes to Bohdan by hand: Anna is a former owner now (she may read the lead, not work it).
    assign_by_hand(world.app, world.anna_lead, T0, manager="bohdan", reason="Anna is away", who=SYSTEM)
    made = tasks.create_task(world.app, T0, who=world.head("halyna", "sales"), lead_id=world.anna_lead,
                             title="Check the paperwork", due_at=None)  # fmt: skip
    assert made["manager"]["key"] == "halyna" and made["follows_owner"] is False
    with pytest.raises(Forbidden, match="not yours to change"):
        tasks.complete_task(world.app, made["id"], T0, who=world.manager("anna"))
    with pytest.raises(NotFound, match=f"task {made['id']} does not exist"):
        tasks.complete_task(world.app, made["id"], T0, who=world.head("wanda", "west"))  # another team's lead
    with pytest.raises(NotFound):
        tasks.complete_task(world.app, 999_999, T0, who=ADMIN)
    assert tasks.complete_task(world.app, made["id"], T0, who=world.manager("bohdan"))["status"] == "done"


def test_reassigning_hands_the_task_over_and_keeps_its_timer(world: World) -> None:
    anna = world.manager("anna")
    made = tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Call back",
                             due_at=T0 + timedelta(hours=1))  # fmt: skip
    # Bohdan has never had the lead: he could not see it, so the task cannot be his.
    with pytest.raises(InvalidInput, match="Bohdan cannot see lead"):
        tasks.reassign_task(world.app, made["id"], T0, who=anna, manager_key="bohdan")
    with pytest.raises(InvalidInput, match="manager 'nobody' does not exist"):
        tasks.reassign_task(world.app, made["id"], T0, who=anna, manager_key="nobody")
    moved = tasks.reassign_task(world.app, made["id"], T0, who=anna, manager_key="halyna")  # the team's head
    assert moved["manager"]["key"] == "halyna" and moved["follows_owner"] is False
    assert [t["due_at"] for t in _timers(world.app)] == [T0 + timedelta(hours=1)]
    kind, actor, data = _events(world.app, world.anna_lead)[-1]
    assert (kind, actor, data["previous"], data["manager"]) == ("task.reassigned", "user:anna", "anna", "halyna")
    assert data["reason"] == "handed over by user:anna"
    # Anna is the lead's owner: she may still change it; given back to her, it follows the owner again.
    back = tasks.reassign_task(world.app, made["id"], T0, who=anna, manager_key="anna")
    assert back["follows_owner"] is True
    tasks.complete_task(world.app, made["id"], T0, who=anna)
    with pytest.raises(Conflict, match="only an open task is handed over"):
        tasks.reassign_task(world.app, made["id"], T0, who=anna, manager_key="halyna")


def test_tasks_that_follow_the_owner_move_with_the_lead(world: World) -> None:
    app, lead = world.app, world.anna_lead
    with app.engine.begin() as conn:
        follows = tasks.create_task_in(conn, app, lead_id=lead, manager_id=world.ids["anna"], title="Call attempt 2",
                                       due_at=T0 + timedelta(hours=3), now=T0, who=SYSTEM, kind="call",
                                       reason="cadence: 3h after the first", source="cadence", follows_owner=True,
                                       cadence_attempt=2)  # fmt: skip
        stays = tasks.create_task_in(conn, app, lead_id=lead, manager_id=world.ids["halyna"], title="Audit",
                                     due_at=None, now=T0, who=SYSTEM, reason="set by the head", source="manual")  # fmt: skip
    later = T0 + timedelta(minutes=5)
    with app.engine.begin() as conn:
        assert tasks.move_owner_tasks_in(conn, lead, world.ids["bohdan"], later, SYSTEM) == [follows]
        assert tasks.move_owner_tasks_in(conn, lead, world.ids["bohdan"], later, SYSTEM) == []  # already his
    items = {t["id"]: t for t in tasks.list_tasks(app, T0, who=ADMIN)["items"]}
    assert items[follows]["manager"]["key"] == "bohdan" and items[stays]["manager"]["key"] == "halyna"
    assert items[follows]["cadence_attempt"] == 2
    assert [t["ref"] for t in _timers(app)] == [f"task:{follows}"]  # the due time has not moved
    kind, _, data = _events(app, lead)[-1]
    assert (kind, data["previous"], data["manager"]) == ("task.reassigned", "anna", "bohdan")
    assert data["reason"] == f"follows lead {lead} to its new owner bohdan"
    # The lead loses its owner: the task waits, open and unassigned, for the next one.
    with app.engine.begin() as conn:
        assert tasks.move_owner_tasks_in(conn, lead, None, later, SYSTEM) == [follows]
    waiting = tasks.list_tasks(app, T0, who=ADMIN, lead_id=lead)["items"]
    assert {(t["id"], t["status"], t["manager"] is None) for t in waiting} == {(follows, "open", True),
                                                                               (stays, "open", False)}  # fmt: skip
    assert "has no owner now" in _events(app, lead)[-1][2]["reason"]
    with app.engine.begin() as conn:
        assert tasks.move_owner_tasks_in(conn, lead, world.ids["anna"], later, SYSTEM) == [follows]


def _outbox(app: Leadflow, event: str) -> list[Any]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
    return [r for r in rows if r["payload"].get("event") == event]


def _claim(app: Leadflow, task_id: int) -> None:
    """What the worker does before it fires a task's timer: takes (deletes) the timer row."""
    with app.engine.begin() as conn:
        conn.execute(delete(timers).where(timers.c.ref == f"task:{task_id}"))


def test_an_open_task_past_its_due_time_is_told_to_its_assignee(world: World) -> None:
    app = world.app
    made = tasks.create_task(app, T0, who=world.manager("anna"), lead_id=world.anna_lead, title="Call back",
                             due_at=T0 + timedelta(hours=1))  # fmt: skip
    _claim(app, made["id"])
    late = T0 + timedelta(hours=2, minutes=5)
    with app.engine.begin() as conn:
        event_id = tasks.fire_overdue_in(conn, app, made["id"], late)
    assert event_id is not None
    kind, actor, data = _events(app, world.anna_lead)[-1]
    assert (kind, actor) == ("task.overdue", "tasks")
    assert data == {"task": made["id"], "title": "Call back", "manager": "anna",
                    "due_at": (T0 + timedelta(hours=1)).isoformat(), "reason": "open 1h5m after its due time"}  # fmt: skip
    [message] = _outbox(app, "task.overdue")
    assert (message["channel"], message["recipient"], message["event_id"]) == ("email", "anna@example.test", event_id)
    assert message["subject"] == f"Overdue task: Call back (lead #{world.anna_lead})"
    assert "13:00 24.11" in message["body"]  # in Kyiv
    # A task done before its timer fired says nothing.
    done = tasks.create_task(app, T0, who=world.manager("anna"), lead_id=world.anna_lead, title="Send the offer",
                             due_at=T0 + timedelta(hours=1))  # fmt: skip
    tasks.complete_task(app, done["id"], T0 + timedelta(minutes=50), who=world.manager("anna"))
    with app.engine.begin() as conn:
        assert tasks.fire_overdue_in(conn, app, done["id"], late) is None
        assert tasks.fire_overdue_in(conn, app, 999_999, late) is None
    assert len(_outbox(app, "task.overdue")) == 1
    assert [k for k, _, _ in _events(app, world.anna_lead)].count("task.overdue") == 1


def test_an_overdue_task_nobody_holds_goes_to_the_team_chat(world: World) -> None:
    app = world.app
    with app.engine.begin() as conn:
        conn.execute(teams.update().where(teams.c.key == "sales").values(telegram_chat_id="-100500"))
        task_id = tasks.create_task_in(conn, app, lead_id=world.anna_lead, manager_id=None, title="Call",
                                       due_at=T0, now=T0, who=SYSTEM, reason="cadence", source="cadence")  # fmt: skip
        tasks.fire_overdue_in(conn, app, task_id, T0 + timedelta(minutes=1))
    assert [(m["channel"], m["recipient"]) for m in _outbox(app, "task.overdue")] == [("telegram", "-100500")]


def _ids(page: dict[str, Any]) -> list[int]:
    return [item["lead_id"] for item in page["items"]]


def test_each_person_lists_the_tasks_of_their_scope_and_no_further(world: World) -> None:
    app = world.app
    for lead, key, hours in ((world.anna_lead, "anna", 1), (world.bohdan_lead, "bohdan", 2),
                             (world.wanda_lead, "wanda", 3)):  # fmt: skip
        tasks.create_task(app, T0, who=world.manager(key), lead_id=lead, title=f"Call {key}'s client",
                          due_at=T0 + timedelta(hours=hours))  # fmt: skip
    anna, halyna, wanda = world.manager("anna"), world.head("halyna", "sales"), world.head("wanda", "west")
    everything = [world.anna_lead, world.bohdan_lead, world.wanda_lead]
    assert _ids(tasks.list_tasks(app, T0, who=anna)) == [world.anna_lead]  # mine, by default
    assert _ids(tasks.list_tasks(app, T0, who=anna, scope="team")) == [world.anna_lead]  # no team of hers: her own
    assert _ids(tasks.list_tasks(app, T0, who=anna, scope="all")) == [world.anna_lead]  # the leads she may see
    assert _ids(tasks.list_tasks(app, T0, who=halyna, scope="team")) == [world.anna_lead, world.bohdan_lead]
    assert tasks.list_tasks(app, T0, who=halyna)["items"] == []  # mine: none is hers
    assert _ids(tasks.list_tasks(app, T0, who=wanda, scope="team")) == [world.wanda_lead]
    assert _ids(tasks.list_tasks(app, T0, who=wanda, scope="all")) == [world.wanda_lead]
    assert _ids(tasks.list_tasks(app, T0, who=ADMIN)) == everything  # no manager: all, soonest due first
    crm = Principal("key", "crm", 5, scope="read")
    page = tasks.list_tasks(app, T0, who=crm, scope="team")
    assert _ids(page) == everything and page["total"] == 3
    # Filters: one lead (a lead one may not see is not found), one manager, the overdue, a page of the list.
    with pytest.raises(NotFound):
        tasks.list_tasks(app, T0, who=wanda, lead_id=world.anna_lead, scope="all")
    assert _ids(tasks.list_tasks(app, T0, who=halyna, scope="all", manager_key="bohdan")) == [world.bohdan_lead]
    with pytest.raises(InvalidInput, match="manager 'nobody' does not exist"):
        tasks.list_tasks(app, T0, who=ADMIN, manager_key="nobody")
    overdue = tasks.list_tasks(app, T0 + timedelta(hours=2, minutes=30), who=ADMIN, overdue=True)
    assert _ids(overdue) == [world.anna_lead, world.bohdan_lead] and all(t["overdue"] for t in overdue["items"])
    page = tasks.list_tasks(app, T0, who=ADMIN, limit=1, offset=1)
    assert _ids(page) == [world.bohdan_lead] and page["total"] == 3
    assert tasks.list_tasks(app, T0, who=ADMIN, scope="mine")["total"] == 0  # an admin who is no manager has none
    with pytest.raises(InvalidInput, match="only an open task is overdue"):
        tasks.list_tasks(app, T0, who=ADMIN, status="done", overdue=True)
    with pytest.raises(Forbidden):
        tasks.list_tasks(app, T0, who=Principal("key", "site", 6, scope="intake"))


def test_closed_tasks_are_listed_by_status(world: World) -> None:
    anna = world.manager("anna")
    first = tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="One", due_at=None)
    second = tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Two", due_at=None)
    tasks.complete_task(world.app, first["id"], T0 + timedelta(minutes=1), who=anna)
    tasks.cancel_task(world.app, second["id"], T0 + timedelta(minutes=2), who=anna, reason="not needed")
    assert tasks.list_tasks(world.app, T0, who=anna)["total"] == 0
    assert [t["title"] for t in tasks.list_tasks(world.app, T0, who=anna, status="done")["items"]] == ["One"]
    assert [t["title"] for t in tasks.list_tasks(world.app, T0, who=anna, status="any")["items"]] == ["Two", "One"]
    # The card's list: the closed ones too, the last closed first.
    card = tasks.lead_tasks(world.app, world.anna_lead, T0, who=anna)
    assert [(t["title"], t["status"]) for t in card] == [("Two", "cancelled"), ("One", "done")]
    assert tasks.lead_tasks(world.app, world.anna_lead, T0, who=world.manager("bohdan")) == []


def test_the_due_time_is_shown_in_the_assignees_zone(world: World) -> None:
    due = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    kyiv = tasks.create_task(world.app, T0, who=world.manager("anna"), lead_id=world.anna_lead, title="Call",
                             due_at=due)  # fmt: skip
    west = tasks.create_task(world.app, T0, who=world.manager("wanda"), lead_id=world.wanda_lead, title="Call",
                             due_at=due)  # fmt: skip
    assert kyiv["due_at_local"] == "2026-11-24T17:00:00+02:00"
    assert west["due_at_local"] == "2026-11-24T10:00:00-05:00"
    # Read by someone in another zone, the due time is still the assignee's.
    listed = {t["id"]: t["due_at_local"] for t in tasks.list_tasks(world.app, T0, who=ADMIN)["items"]}
    assert listed == {kyiv["id"]: "2026-11-24T17:00:00+02:00", west["id"]: "2026-11-24T10:00:00-05:00"}
    # The notification says it in the assignee's zone too.
    _claim(world.app, west["id"])
    with world.app.engine.begin() as conn:
        tasks.fire_overdue_in(conn, world.app, west["id"], due + timedelta(minutes=1))
    [message] = _outbox(world.app, "task.overdue")
    assert message["recipient"] == "wanda@example.test" and "10:00 24.11" in message["body"]


def test_setting_a_task_checks_the_lead_and_the_assignee(world: World) -> None:
    anna = world.manager("anna")
    with pytest.raises(NotFound):
        tasks.create_task(world.app, T0, who=anna, lead_id=world.bohdan_lead, title="Call", due_at=None)
    with pytest.raises(InvalidInput, match="say what is to be done"):
        tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="   ", due_at=None)
    with pytest.raises(InvalidInput, match="at most 200"):
        tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="x" * 201, due_at=None)
    with pytest.raises(InvalidInput, match="not a kind of task"):
        tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Fax", due_at=None, kind="fax")
    with pytest.raises(InvalidInput, match="time zone"):
        tasks.create_task(world.app, T0, who=anna, lead_id=world.anna_lead, title="Call",
                          due_at=datetime(2026, 11, 24, 12, 0))  # fmt: skip
    # An admin sets it for the lead's owner by default.
    made = tasks.create_task(world.app, T0, who=ADMIN, lead_id=world.wanda_lead, title="Call", due_at=None)
    assert made["manager"]["key"] == "wanda"
    assert _events(world.app, world.anna_lead) == []  # nothing was written for the refused ones
