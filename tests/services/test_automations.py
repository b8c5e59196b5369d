"""Automations through the services, on real SQLite and PostgreSQL, driven through days with a clock the test moves:
triggers on events, delayed actions that fire once or are cancelled, the call cadence, overdue tasks, the depth limit."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.automation import run_once
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.sla import record_contact
from leadflow.store.tables import cadences, events, leads, managers, outbox, tasks, timers

KYIV = ZoneInfo("Europe/Kyiv")
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 10:00 in Kyiv

RULES = """
default_timezone: Europe/Kyiv
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: qualified}
  - {key: thinking}
  - {key: converted, open: false, outcome: won}
  - {key: junk, open: false}
  - {key: lost, open: false, outcome: lost}
teams:
  - {key: kyiv, timezone: Europe/Kyiv, head: iryna, hours: {mon-sat: "09:00-20:00", closed: [2026-12-08]}}
managers:
  - {key: olena, name: Olena, team: kyiv, email: olena@example.test, hours: always}
  - {key: iryna, name: Iryna, team: kyiv, email: iryna@example.test, hours: {mon-fri: "09:00-18:00"}}
routing:
  fallback: {team: kyiv, managers: [olena], respect_hours: false}
sla: {enabled: false}
roles: {customer-success: [iryna]}
cadences:
  - {key: seven-calls, attempts: 7, exhausted_status: lost, exhausted_reason: could not reach}
automations:
  triggers:
    - key: review-after-win
      when: deal_won
      then:
        - task: {title: "Ask {{ lead.name }} for a review", assignee: "role:customer-success", due: next_working_day}
    - key: thinking-call-back
      when: {status_entered: thinking}
      then:
        - task: {title: "Call {{ lead.name }} back", kind: call, due: 2d}
    - key: not-contacted-2h
      when: lead_created
      after: 2h
      if: {contacted: false, open: true}
      then:
        - notify: {to: head, text: "Lead {{ lead.id }} has had no contact for 2 hours"}
    - key: keep-calling
      when: {contact: {kind: call, outcome: [no_answer, busy]}}
      if: {contacted: false, open: true}
      then:
        - cadence: start
"""


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


def lead_in(lf: Leadflow, name: str, now: datetime, phone: str = "+380671234567") -> int:
    taken = take_lead(lf, LeadIn(name=name, phone=phone), now)
    run_once(lf, now)
    return int(taken.lead_id)


def events_of(lf: Leadflow, lead_id: int, type_: str) -> list[dict[str, Any]]:
    with lf.engine.connect() as conn:
        rows = conn.execute(select(events.c.data, events.c.actor).where(events.c.lead_id == lead_id,
                                                                        events.c.type == type_)
                            .order_by(events.c.id)).all()  # fmt: skip
    return [{**r.data, "actor": r.actor} for r in rows]


def tasks_of(lf: Leadflow, lead_id: int) -> list[Any]:
    with lf.engine.connect() as conn:
        return list(conn.execute(
            select(tasks, managers.c.key.label("manager")).join(managers, managers.c.id == tasks.c.manager_id)
            .where(tasks.c.lead_id == lead_id).order_by(tasks.c.id)
        ).mappings())  # fmt: skip


def notices_to(lf: Leadflow, recipient: str, event: str) -> int:
    with lf.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).where(outbox.c.recipient == recipient)).scalars().all()
    return sum(1 for p in rows if p["event"] == event)


def test_a_won_deal_gives_the_customer_success_role_a_review_task_for_the_next_working_day(lf: Leadflow) -> None:
    lead = lead_in(lf, "Ivan", T0)
    won_at = datetime(2026, 12, 11, 15, 0, tzinfo=UTC)  # Friday 17:00 in Kyiv: Iryna works mon-fri
    set_status(lf, lead, "converted", won_at, who=SYSTEM)
    run_once(lf, won_at)
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "review-after-win"]
    assert task["manager"] == "iryna" and task["title"] == "Ask Ivan for a review" and task["status"] == "open"
    assert task["due_at"].astimezone(KYIV) == datetime(2026, 12, 14, 9, 0, tzinfo=KYIV)  # Monday 09:00
    assert "next working day" in task["reason"]
    [fired] = [e for e in events_of(lf, lead, "automation.fired") if e["trigger"] == "review-after-win"]
    assert "closed as won" in fired["reason"] and "for Iryna" in fired["reason"]
    assert fired["actor"] == "system:automation:review-after-win"
    run_once(lf, won_at + timedelta(minutes=5))
    assert len([t for t in tasks_of(lf, lead) if t["source"] == "review-after-win"]) == 1  # once, not per round


def test_not_contacted_in_two_hours_fires_once_and_never_after_a_contact(lf: Leadflow) -> None:
    silent = lead_in(lf, "Silent", T0)
    reached = lead_in(lf, "Reached", T0 + timedelta(minutes=1), phone="+380501112233")
    record_contact(lf, reached, "olena", "call", "connected", T0 + timedelta(minutes=30), who=SYSTEM)
    for minutes in (31, 60, 119, 121, 122, 180, 600, 2000):
        run_once(lf, T0 + timedelta(minutes=minutes))
    fired = [e for e in events_of(lf, silent, "automation.fired") if e["trigger"] == "not-contacted-2h"]
    assert len(fired) == 1 and "2h ago" in fired[0]["reason"]
    assert not [e for e in events_of(lf, reached, "automation.fired") if e["trigger"] == "not-contacted-2h"]
    [cancelled] = events_of(lf, reached, "automation.cancelled")
    assert cancelled["trigger"] == "not-contacted-2h" and "contacted" in cancelled["reason"]
    assert notices_to(lf, "iryna@example.test", "automation.notice") == 1
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(timers).where(timers.c.kind == "automation")).scalar() == 0


def test_an_overdue_task_notifies_its_assignee_once(lf: Leadflow) -> None:
    lead = lead_in(lf, "Maria", T0)
    record_contact(lf, lead, "olena", "call", "connected", T0 + timedelta(minutes=5), who=SYSTEM)
    set_status(lf, lead, "thinking", T0 + timedelta(minutes=6), who=SYSTEM)
    run_once(lf, T0 + timedelta(minutes=6))
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "thinking-call-back"]
    assert task["manager"] == "olena" and task["kind"] == "call"
    assert task["due_at"] == T0 + timedelta(minutes=6, days=2)
    run_once(lf, T0 + timedelta(days=2))
    assert notices_to(lf, "olena@example.test", "task.overdue") == 0  # not yet due
    run_once(lf, T0 + timedelta(days=2, minutes=7))
    run_once(lf, T0 + timedelta(days=3))
    assert notices_to(lf, "olena@example.test", "task.overdue") == 1
    assert len(events_of(lf, lead, "task.overdue")) == 1


def local(at: datetime) -> datetime:
    return at.astimezone(KYIV)


def test_the_cadence_calls_seven_times_inside_the_window_three_a_day_two_hours_apart_then_closes(lf: Leadflow) -> None:
    lead = lead_in(lf, "Petro", T0)
    now = T0 + timedelta(minutes=10)
    calls = [now]
    record_contact(lf, lead, "olena", "call", "no_answer", now, who=SYSTEM)
    run_once(lf, now)
    while True:
        open_calls = [t for t in tasks_of(lf, lead) if t["source"] == "cadence" and t["status"] == "open"]
        if not open_calls:
            break
        [task] = open_calls
        assert task["manager"] == "olena" and task["title"] == f"Call attempt {len(calls) + 1} of 7"
        now = task["due_at"]  # the frozen clock moves to the planned time; the call goes unanswered
        calls.append(now)
        record_contact(lf, lead, "olena", "call", "no_answer", now, who=SYSTEM)
        run_once(lf, now)
    assert len(calls) == 7
    days: dict[Any, int] = {}
    for i, call in enumerate(calls):
        assert 10 <= local(call).hour < 19, call  # the client's window (a Ukrainian number: Kyiv time)
        assert local(call).weekday() != 6  # the team does not work on Sunday
        assert local(call).date() != date(2026, 12, 8)  # nor on its holiday
        days[local(call).date()] = days.get(local(call).date(), 0) + 1
        if i:
            assert call - calls[i - 1] >= timedelta(hours=2)
    assert max(days.values()) <= 3  # a mobile: at most 3 calls a day
    with lf.engine.connect() as conn:
        status = conn.execute(select(leads.c.status, leads.c.lost_reason).where(leads.c.id == lead)).one()
        row = conn.execute(select(cadences).where(cadences.c.lead_id == lead)).mappings().one()
    assert status.status == "lost" and status.lost_reason.startswith("could not reach")
    assert row["state"] == "exhausted" and len(row["attempts"]) == 7
    assert len(events_of(lf, lead, "cadence.exhausted")) == 1


def test_a_connected_call_stops_the_cadence_and_cancels_the_next_attempt(lf: Leadflow) -> None:
    lead = lead_in(lf, "Oksana", T0)
    record_contact(lf, lead, "olena", "call", "busy", T0 + timedelta(minutes=1), who=SYSTEM)
    run_once(lf, T0 + timedelta(minutes=1))
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "cadence"]
    record_contact(lf, lead, "olena", "call", "connected", task["due_at"], who=SYSTEM)
    run_once(lf, task["due_at"])
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "cadence"]
    assert task["status"] == "cancelled"
    [stopped] = events_of(lf, lead, "cadence.stopped")
    assert "connected" in stopped["reason"]
    run_once(lf, task["due_at"] + timedelta(days=3))
    assert len(tasks_of(lf, lead)) == 1  # nothing more was planned


CHAIN = """
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: s1}
  - {key: s2}
  - {key: s3}
  - {key: s4}
  - {key: s5}
  - {key: junk, open: false}
teams: [{key: t, timezone: Europe/Kyiv}]
managers: [{key: a, name: A, team: t, hours: always}]
routing: {fallback: {team: t}}
sla: {enabled: false}
automations:
  max_depth: 2
  triggers:
    - {key: one, when: {status_entered: s1}, then: [{status: s2}]}
    - {key: two, when: {status_entered: s2}, then: [{status: s3}]}
    - {key: three, when: {status_entered: s3}, then: [{status: s4}]}
    - {key: four, when: {status_entered: s4}, then: [{status: s5}]}
"""


def test_a_chain_of_automations_stops_at_the_depth_limit_with_an_event_saying_so(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(CHAIN)
    lead = lead_in(lf, "Chain", T0)
    set_status(lf, lead, "s1", T0, who=SYSTEM)
    run_once(lf, T0)
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.status).where(leads.c.id == lead)).scalar() == "s3"
    [stopped] = events_of(lf, lead, "automation.stopped")
    assert stopped["chain"] == ["one", "two", "three"] and "max_depth = 2" in stopped["reason"]


FAILING = """
teams: [{key: t, timezone: Europe/Kyiv}]
managers: [{key: a, name: A, team: t, hours: always}]
routing: {fallback: {team: t}}
sla: {enabled: false}
reply_templates:
  - {key: hello, text: "Hello {{ lead.name }}"}
automations:
  triggers:
    - key: task-then-reply
      when: lead_created
      then:
        - task: {title: "Call {{ lead.name }}", due: 1h}
        - reply: hello
"""


def test_a_step_that_cannot_be_done_undoes_the_trigger_and_says_why(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(FAILING)
    lead = lead_in(lf, "Nomail", T0)  # a phone only: no channel can carry a written reply
    assert tasks_of(lf, lead) == []  # the task before the failed reply is undone with it
    [failed] = events_of(lf, lead, "automation.failed")
    assert failed["trigger"] == "task-then-reply" and "not done" in failed["reason"]
    assert "e-mail" in failed["reason"] or "written" in failed["reason"] or "channel" in failed["reason"]


ANSWERS = """
default_timezone: Europe/Kyiv
teams: [{key: t, timezone: Europe/Kyiv}]
managers: [{key: a, name: A, team: t, hours: always}]
routing: {fallback: {team: t}}
sla:
  default: {first_contact: 10m, count: wall_clock}
reply_templates:
  - {key: hello, text: "Hello {{ lead.name }}"}
  - {key: hello, channel: viber, language: uk, text: "Вітаємо, {{ lead.name }}! Менеджер напише за хвилину."}
automations:
  triggers:
    - key: instant-answer
      when: lead_created
      then:
        - reply: hello
    - key: offer-viewed
      when: {client_event: offer_viewed}
      if: {open: true}
      then:
        - task: {title: "{{ lead.name }} is reading the offer: call now", kind: call, due: 15m}
        - tag: reading
    - key: gone-quiet
      when: {idle: 3d}
      if: {open: true}
      then:
        - notify: {to: owner, text: "{{ lead.name }}: nothing for 3 days"}
"""


def test_an_instant_reply_goes_out_in_the_clients_channel_and_is_no_ones_first_contact(
    make_app: Callable[[str], Leadflow],
) -> None:
    from leadflow.channels.inbound.config import ChannelsConfig
    from leadflow.core.conversation import InboundMessage
    from leadflow.services.conversations import take_inbound
    from leadflow.store.tables import activities, messages

    lf = make_app(ANSWERS)
    lf.channels = ChannelsConfig(viber_auth_token="viber-token")
    wrote = InboundMessage("viber", "t-1", "user-1", "Привіт", name="Олег", lead={"language": "uk"})
    lead = take_inbound(lf, [wrote], T0)[0].lead_id
    assert lead is not None
    run_once(lf, T0)
    with lf.engine.connect() as conn:
        sent = conn.execute(select(messages).where(messages.c.lead_id == lead, messages.c.direction == "out")
                            ).mappings().one()  # fmt: skip
        queued = conn.execute(select(outbox).where(outbox.c.channel == "reply")).mappings().one()
        row = conn.execute(select(leads.c.first_contact_at, leads.c.sla_state).where(leads.c.id == lead)).one()
        activity = conn.execute(select(activities.c.kind, activities.c.outcome, activities.c.manager_id)
                                .where(activities.c.lead_id == lead)).one()  # fmt: skip
    assert sent["kind"] == "auto" and sent["body"] == "Вітаємо, Олег! Менеджер напише за хвилину."
    assert queued["recipient"] == "viber:user-1" and queued["body"] == sent["body"]
    assert row.first_contact_at is None and row.sla_state == "running"  # the manager still has to answer
    assert tuple(activity) == ("message", "auto", None)
    [fired] = events_of(lf, lead, "automation.fired")
    assert "replied with 'hello' via viber" in fired["reason"]


def test_the_client_viewing_the_offer_gives_the_owner_a_call_now_task_once(
    make_app: Callable[[str], Leadflow],
) -> None:
    from leadflow.services.client_events import ClientEvent, take_client_event

    lf = make_app(ANSWERS)
    lead = lead_in(lf, "Ira", T0)  # a phone only: the instant answer cannot go anywhere, and says so
    assert "not done" in events_of(lf, lead, "automation.failed")[0]["reason"]
    viewed = ClientEvent("offer-1", "offer_viewed", phone="067 123 45 67", url="https://shop.example/offer/7")
    for _ in range(2):  # the viewer reports it twice: one event
        take_client_event(lf, viewed, T0 + timedelta(hours=1), who=SYSTEM)
    run_once(lf, T0 + timedelta(hours=1))
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "offer-viewed"]
    assert task["title"] == "Ira is reading the offer: call now" and task["manager"] == "a"
    assert task["due_at"] == T0 + timedelta(hours=1, minutes=15)
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.tags).where(leads.c.id == lead)).scalar() == ["reading"]


def test_a_quiet_lead_is_noticed_after_its_idle_period_and_activity_starts_it_again(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(ANSWERS)
    lead = lead_in(lf, "Quiet", T0)
    record_contact(lf, lead, "a", "call", "no_answer", T0 + timedelta(days=2), who=SYSTEM)  # activity: starts again
    run_once(lf, T0 + timedelta(days=2))
    run_once(lf, T0 + timedelta(days=3, hours=1))  # 3 days after arrival, 1 day after the call: not yet
    assert not [e for e in events_of(lf, lead, "automation.fired") if e["trigger"] == "gone-quiet"]
    run_once(lf, T0 + timedelta(days=5, minutes=1))
    run_once(lf, T0 + timedelta(days=9))  # what leadflow did itself does not wake it up again
    [fired] = [e for e in events_of(lf, lead, "automation.fired") if e["trigger"] == "gone-quiet"]
    assert "nothing happened on the lead since" in fired["reason"]


HOOKS = """
teams: [{key: t, timezone: Europe/Kyiv}]
managers: [{key: a, name: A, team: t, hours: always}]
routing: {fallback: {team: t}}
sla: {enabled: false}
automations:
  triggers:
    - key: to-crm
      when: {status_entered: qualified}
      then:
        - set: {product: leasing, budget: 250000, extra.segment: b2b}
        - webhook: https://crm.example.test/hooks/leadflow
        - cadence: stop
"""


def test_a_trigger_sets_fields_and_posts_the_lead_to_a_webhook(make_app: Callable[[str], Leadflow]) -> None:
    from pydantic import SecretStr

    lf = make_app(HOOKS)
    lead = lead_in(lf, "Hook", T0)
    set_status(lf, lead, "qualified", T0 + timedelta(minutes=1), who=SYSTEM)
    run_once(lf, T0 + timedelta(minutes=1))
    [failed] = events_of(lf, lead, "automation.failed")  # no signing secret: nothing half-done
    assert "LEADFLOW_NOTIFY__WEBHOOK_SECRET" in failed["reason"]
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.product).where(leads.c.id == lead)).scalar() is None
    lf.notify = lf.notify.model_copy(update={"webhook_secret": SecretStr("s3cret-s3cret-s3cret")})
    set_status(lf, lead, "contacted", T0 + timedelta(minutes=2), who=SYSTEM)
    set_status(lf, lead, "qualified", T0 + timedelta(minutes=3), who=SYSTEM)
    run_once(lf, T0 + timedelta(minutes=3))
    with lf.engine.connect() as conn:
        row = conn.execute(select(leads.c.product, leads.c.budget, leads.c.raw).where(leads.c.id == lead)).one()
        [hook] = conn.execute(select(outbox).where(outbox.c.channel == "webhook")).mappings().all()
    assert row.product == "leasing" and row.budget == 250000 and row.raw["extra"]["segment"] == "b2b"
    assert hook["recipient"] == "https://crm.example.test/hooks/leadflow"
    assert hook["payload"]["event"] == "automation.webhook" and hook["payload"]["lead"]["id"] == lead
    assert hook["payload"]["trigger"] == "to-crm"
    [fired] = events_of(lf, lead, "automation.fired")
    assert "set product = leasing" in fired["reason"] and "no cadence was running" in fired["reason"]


def test_the_next_call_follows_the_lead_when_it_is_escalated(make_app: Callable[[str], Leadflow]) -> None:
    from leadflow.services.sla import escalate_due

    rules = (
        RULES.replace("sla: {enabled: false}", "sla: {default: {first_contact: 10m, count: wall_clock}}")
        .replace(
            "  - {key: iryna, name: Iryna",
            "  - {key: taras, name: Taras, team: kyiv, hours: always}\n  - {key: iryna, name: Iryna",
        )
        .replace("managers: [olena], respect_hours: false", "managers: [olena, taras], respect_hours: false")
    )
    lf = make_app(rules)
    lead = lead_in(lf, "Moving", T0)
    owner = tasks_of(lf, lead)  # nothing yet
    record_contact(lf, lead, "olena", "call", "no_answer", T0 + timedelta(minutes=1), who=SYSTEM)
    run_once(lf, T0 + timedelta(minutes=1))
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "cadence"]
    assert task["manager"] == "olena" and owner == []
    assert escalate_due(lf, T0 + timedelta(minutes=11)) == 1  # Olena never reached the client: Taras has it now
    run_once(lf, T0 + timedelta(minutes=11))
    [task] = [t for t in tasks_of(lf, lead) if t["source"] == "cadence"]
    assert task["manager"] == "taras" and task["status"] == "open"
    [moved] = events_of(lf, lead, "task.reassigned")
    assert moved["manager"] == "taras" and "new owner" in moved["reason"]


def test_an_answer_to_a_form_lead_by_e_mail_has_a_subject_in_the_clients_language(
    make_app: Callable[[str], Leadflow],
) -> None:
    from leadflow.services.replies import send_reply
    from leadflow.store.tables import messages

    lf = make_app(RULES)
    lf.notify = lf.notify.model_copy(update={"smtp_host": "127.0.0.1", "smtp_from": "sales@example.test"})
    for language, subject in (("uk", "Ваш запит"), ("ru", "Ваш запрос"), ("en", "Your request")):
        taken = take_lead(lf, LeadIn(name="Mail", email=f"{language}@example.com", language=language), T0)
        send_reply(lf, taken.lead_id, "Дякуємо!", T0, who=SYSTEM)
        with lf.engine.connect() as conn:
            sent = conn.execute(select(messages.c.subject).where(messages.c.lead_id == taken.lead_id)).scalar()
        assert sent == subject


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_real_worker_reads_the_log_and_fires_a_trigger(make_app: Callable[[str], Leadflow]) -> None:
    import time

    from leadflow.services.context import utcnow
    from leadflow.worker import Worker

    lf = make_app(HOOKS.replace("when: {status_entered: qualified}", "when: lead_created").replace(
        "        - set: {product: leasing, budget: 250000, extra.segment: b2b}\n"
        "        - webhook: https://crm.example.test/hooks/leadflow\n", "        - tag: new\n"))  # fmt: skip
    worker = Worker(lf, poll_seconds=0.25)
    worker.start()
    try:
        lead = take_lead(lf, LeadIn(name="Live", phone="+380671234567"), utcnow()).lead_id
        deadline = time.monotonic() + 10
        while not events_of(lf, lead, "automation.fired"):
            assert time.monotonic() < deadline, "the automation loop did not fire the trigger"
            time.sleep(0.05)
    finally:
        worker.stop.set()
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.tags).where(leads.c.id == lead)).scalar() == ["new"]
