"""Calls end to end, over real HTTP on loopback: a stand-in of each call-tracking service posts finished calls in
its own wire format (Binotel's PHP-style form, Ringostat's JSON or form with the documented field names, leadflow's
generic JSON); a missed call from a new number becomes a hot, assigned lead with its reason, a call answered on a
manager's extension is that manager's contact and stops the first-contact clock, and forged, repeated or
unreadable calls create nothing new."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.policy import SYSTEM
from leadflow.core.rules_text import RulesError, parse_rules
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due
from leadflow.store.tables import (
    activities,
    channel_events,
    channel_refusals,
    events,
    leads,
    managers,
    messages,
    timers,
)
from tests.support import live_server, person

SECRET = "calls-token-0123456789abcdef"
RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 20, extension: "101"}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 20, extension: 102}
  - {key: halyna, name: Halyna, team: sales, capacity: 20}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
sla:
  default: {first_contact: 15m, count: wall_clock}
scoring:
  signals:
    - {when: {channel: call, extra.call: missed}, at_least: hot, why: a missed call}
"""
CLIENT = "0671234567"  # as the services report a Ukrainian number
CLIENT_E164 = "+380671234567"
TRACKING = "0442223344"  # the company's tracking number the client dialled
RECORDING = "https://my.binotel.ua/?module=cdrs&action=generateFile&fileName=4683310794.mp3&callType=incoming"


# -- The stand-in sender: each service's wire format ---------------------------------------------------------------


def php_form(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested payload as PHP's http_build_query writes it, the way Binotel posts: callDetails[billsec]=17."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs += php_form(value, name)
        elif isinstance(value, list):
            pairs += php_form({str(i): v for i, v in enumerate(value)}, name)
        else:
            pairs.append((name, str(value)))
    return pairs


def binotel_call(
    call_id: int, *, number: str = CLIENT, disposition: str = "NOANSWER", billsec: int = 0, extension: str = "",
    call_type: int = 0, recording: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """API CALL COMPLETED as Binotel documents and sends it (its sample, with this call's values)."""
    details: dict[str, Any] = {
        "companyID": "62770", "generalCallID": str(call_id), "callID": str(call_id), "startTime": "1702107076",
        "callType": str(call_type), "internalNumber": extension, "internalAdditionalData": "",
        "externalNumber": number, "waitsec": "13", "billsec": str(billsec), "disposition": disposition,
        "recordingStatus": "uploaded" if recording else "", "isNewCall": "1", "whoHungUp": "", "customerData": "",
        "employeeData": {"name": "Anna", "email": "anna@example.test"} if extension else "",
        "pbxNumberData": {"number": TRACKING, "name": "Google Ads Kyiv"},
        "historyData": [{"waitsec": "13", "billsec": str(billsec), "disposition": disposition,
                         "internalNumber": extension, "internalAdditionalData": ""}],
        "callTrackingData": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_credit",
                             "utm_content": "(not set)", "utm_term": "(not provided)"},
    }  # fmt: skip
    if recording:
        details["linkToCallRecordInMyBusiness"] = recording
    return {"requestType": "apiCallCompleted", "attemptsCounter": "1", "callDetails": details, "language": "ru"}


def ringostat_call(
    call_id: str, *, number: str = CLIENT, disposition: str = "NO ANSWER", billsec: int = 0, extension: str = "",
    call_type: str = "in", recording: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Ringostat's webhook after a call, with the parameters named as docs/channels.md tells to set them up."""
    outgoing = call_type == "out"
    return {"call_id": call_id, "call_type": call_type, "caller": extension if outgoing else number,
            "dst": number if outgoing else TRACKING, "disposition": disposition, "duration": billsec + 9,
            "billsec": billsec, "recording": recording, "extension": extension, "calldate": "2026-03-02T10:15:00+02:00",
            "utm_source": "facebook", "utm_medium": "paid", "utm_campaign": "march_leasing", "utm_term": "",
            "utm_content": ""}  # fmt: skip


def generic_call(call_id: str, *, status: str = "missed", talk: int = 0, extension: str | None = None,
                 number: str = CLIENT, direction: str = "incoming") -> dict[str, Any]:  # fmt: skip
    """leadflow's own call format."""
    return {"call_id": call_id, "caller": number, "called": TRACKING, "campaign": "radio_spring", "status": status,
            "duration": talk + 12, "talk_seconds": talk, "recording_url": "https://pbx.example.test/rec/1.mp3",
            "extension": extension, "started_at": "2026-03-02T08:15:00Z", "direction": direction}  # fmt: skip


@dataclass
class CallTracker:
    """Posts calls to leadflow as the services do: Binotel a form to the address with the token in it, Ringostat
    JSON (or a form) to the same kind of address, the generic sender JSON with the token in a header."""

    client: httpx.Client
    token: str | None = SECRET
    sent: list[httpx.Response] = field(default_factory=list)

    def binotel(self, payload: Mapping[str, Any]) -> httpx.Response:
        return self._keep(self.client.post(self._path("binotel"), data=dict(php_form(payload))))

    def ringostat(self, payload: Mapping[str, Any], *, form: bool = False) -> httpx.Response:
        if form:
            return self._keep(self.client.post(self._path("ringostat"), data={k: str(v) for k, v in payload.items()}))
        return self._keep(self.client.post(self._path("ringostat"), json=dict(payload)))

    def generic(self, payload: Mapping[str, Any]) -> httpx.Response:
        headers = {"X-Leadflow-Token": self.token} if self.token is not None else {}
        return self._keep(self.client.post("/api/v1/channels/calls/generic", json=dict(payload), headers=headers))

    def _path(self, provider: str) -> str:
        return f"/api/v1/channels/calls/{provider}" + (f"/{self.token}" if self.token is not None else "")

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        self.sent.append(answer)
        return answer


# -- Fixtures and readers --------------------------------------------------------------------------------------------


@pytest.fixture
def app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = ChannelsConfig(calls_secret=SECRET)
    return lf


@pytest.fixture
def tracker(app: Leadflow) -> Iterator[CallTracker]:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield CallTracker(client)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def only_lead(app: Leadflow) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(leads).where(leads.c.phone == CLIENT_E164)).mappings().one())


def owner(app: Leadflow, lead: Mapping[str, Any]) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(select(managers.c.key).where(managers.c.id == lead["manager_id"])).scalar_one())


def event_data(app: Leadflow, lead_id: int, type_: str) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(events.c.data).where(events.c.lead_id == lead_id, events.c.type == type_)
                                 .order_by(events.c.id)).scalars())  # fmt: skip


def contacts(app: Leadflow, lead_id: int) -> list[tuple[str, str, str]]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(managers.c.key, activities.c.kind, activities.c.outcome)
                            .join(managers, managers.c.id == activities.c.manager_id)
                            .where(activities.c.lead_id == lead_id).order_by(activities.c.id))  # fmt: skip
        return [(r.key, r.kind, r.outcome) for r in rows]


def clock_running(app: Leadflow, lead_id: int) -> bool:
    return count(app, timers, timers.c.lead_id == lead_id, timers.c.kind == "first_contact") == 1


def assert_hot_new_lead(app: Leadflow, source: str, campaign: str) -> dict[str, Any]:
    lead = only_lead(app)
    assert lead["channel"] == "call" and lead["source"] == source and lead["utm"]["utm_campaign"] == campaign
    assert lead["status"] == "assigned" and owner(app, lead) == "anna" and clock_running(app, lead["id"])
    assert lead["temperature"] == "hot" and lead["department"] == "sales"
    (scored,) = event_data(app, lead["id"], "lead.scored")
    assert scored["temperature"] == "hot" and "hot by signal: a missed call" in scored["reason"]
    return lead


def assert_contacted_by_anna(app: Leadflow, lead_id: int) -> None:
    lead = only_lead(app)
    assert lead["id"] == lead_id and lead["first_contact_at"] is not None
    assert lead["sla_state"] == "met" and lead["status"] == "contacted" and not clock_running(app, lead_id)
    assert contacts(app, lead_id) == [("anna", "call", "connected")]
    (contacted,) = event_data(app, lead_id, "lead.contacted")
    assert contacted["manager"] == "anna" and "extension 101" in contacted["note"]


# -- One service at a time: missed call, then the manager's answered call --------------------------------------------


def test_binotel_missed_call_makes_a_hot_lead_and_annas_answered_call_is_her_first_contact(
    app: Leadflow, tracker: CallTracker
) -> None:
    missed = tracker.binotel(binotel_call(4683310794))
    assert missed.status_code == 200 and missed.content == b'{"status":"success"}'  # what Binotel reads as received
    lead = assert_hot_new_lead(app, "binotel", "spring_credit")
    assert lead["utm"] == {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_credit"}

    answered = tracker.binotel(binotel_call(4683310795, disposition="ANSWER", billsec=95, extension="101",
                                            recording=RECORDING))  # fmt: skip
    assert answered.content == b'{"status":"success"}'
    assert count(app, leads) == 1
    assert_contacted_by_anna(app, lead["id"])
    with app.engine.connect() as conn:  # the talk time is the reports' talk minutes
        assert conn.execute(select(activities.c.duration_seconds)).scalars().all() == [95]

    anna = person(app, "anna", "manager", manager="anna")
    thread = tracker.client.get(f"/api/v1/leads/{lead['id']}/messages", headers=anna).json()["items"]
    assert [m["kind"] for m in thread] == ["call_missed", "call_answered"]
    assert thread[0]["text"] == f"Missed call to {TRACKING} (no answer, rang 13 s)"
    assert thread[1]["text"] == "Call answered by extension 101, talked 1 min 35 s"
    assert thread[1]["meta"] == {"provider": "binotel", "direction": "incoming", "duration_seconds": 108,
                                 "talk_seconds": 95, "recording_url": RECORDING, "tracking_number": TRACKING,
                                 "extension": "101", "disposition": "ANSWER",
                                 "sent_at": "2023-12-09T07:31:16+00:00"}  # fmt: skip
    assert all(m["address"] == CLIENT and m["direction"] == "in" for m in thread)


def test_ringostat_json_and_form_calls_do_the_same(app: Leadflow, tracker: CallTracker) -> None:
    missed = tracker.ringostat(ringostat_call("1709367300.1001"))
    assert missed.status_code == 200 and missed.json()["taken"] == ["new_lead"], missed.text
    lead = assert_hot_new_lead(app, "ringostat", "march_leasing")
    again = tracker.ringostat(ringostat_call("1709367400.1002", disposition="BUSY"), form=True)
    assert again.json()["taken"] == ["joined"]  # the client called again: the manager sees it on the lead
    assert count(app, leads) == 1 and count(app, messages) == 2 and clock_running(app, lead["id"])

    answered = tracker.ringostat(ringostat_call("1709367500.1003", disposition="ANSWERED", billsec=40,
                                                extension="101", recording="https://rec.ringostat.test/1003.mp3"),
                                 form=True)  # fmt: skip
    assert answered.json()["taken"] == ["joined"]
    assert_contacted_by_anna(app, lead["id"])
    with app.engine.connect() as conn:
        kept = conn.execute(select(messages.c.meta).where(messages.c.external_id == "ringostat:1709367500.1003"))
        meta = kept.scalar_one()
    assert meta["recording_url"] == "https://rec.ringostat.test/1003.mp3" and meta["talk_seconds"] == 40
    assert meta["sent_at"] == "2026-03-02T10:15:00+02:00" and meta["tracking_number"] == TRACKING


def test_generic_calls_with_the_token_in_a_header(app: Leadflow, tracker: CallTracker) -> None:
    missed = tracker.generic(generic_call("pbx-1"))
    assert missed.status_code == 200 and missed.json()["taken"] == ["new_lead"], missed.text
    lead = assert_hot_new_lead(app, "generic", "radio_spring")
    answered = tracker.generic(generic_call("pbx-2", status="answered", talk=61, extension="101"))
    assert answered.json()["taken"] == ["joined"]
    assert_contacted_by_anna(app, lead["id"])
    # The lead is closed; the client calls again: a new lead (a repeat sale), not the closed one.
    set_status(app, lead["id"], "lost", utcnow(), who=SYSTEM, reason="price")
    assert tracker.generic(generic_call("pbx-3")).json()["taken"] == ["new_lead"]
    assert count(app, leads, leads.c.phone == CLIENT_E164) == 2


# -- Who the call's contact is ---------------------------------------------------------------------------------------


def test_an_answered_call_from_a_new_number_makes_a_lead_of_the_manager_who_answered_already_contacted(
    app: Leadflow, tracker: CallTracker
) -> None:
    tracker.generic(generic_call("warm-up", number="0501112233"))  # round robin: anna took this one, bohdan is next
    answered = tracker.binotel(binotel_call(700, disposition="ANSWER", billsec=30, extension="101"))
    assert answered.status_code == 200
    lead = only_lead(app)
    assert owner(app, lead) == "anna" and lead["temperature"] is None  # answered: no missed-call signal
    assert_contacted_by_anna(app, lead["id"])
    handed = event_data(app, lead["id"], "lead.assigned")
    assert len(handed) == 2 and "the client has spoken to Anna" in handed[-1]["reason"], handed
    with app.engine.connect() as conn:
        load = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    assert load["anna"] == 2 and load["bohdan"] == 0  # routing's pick for bohdan was undone


def test_a_managers_outgoing_calls_are_contact_attempts_and_a_colleagues_answer_is_only_kept(
    app: Leadflow, tracker: CallTracker
) -> None:
    tracker.binotel(binotel_call(800))
    lead_id = only_lead(app)["id"]
    # Bohdan picks up Anna's client's call: it is on the thread, but no contact of his (he never owned the lead).
    tracker.binotel(binotel_call(801, disposition="ANSWER", billsec=20, extension="102"))
    assert contacts(app, lead_id) == [] and clock_running(app, lead_id)
    with app.engine.connect() as conn:
        reason = conn.execute(select(channel_events.c.reason).where(channel_events.c.external_id == "binotel:801"))
        assert "not counted as bohdan's contact: Bohdan has never owned lead" in reason.scalar_one()
    # Anna calls back (callType 1): no answer, then connected.
    tracker.binotel(binotel_call(802, call_type=1, disposition="NOANSWER", extension="101"))
    assert contacts(app, lead_id) == [("anna", "call", "no_answer")] and clock_running(app, lead_id)
    assert event_data(app, lead_id, "lead.contact_attempt")[0]["outcome"] == "no_answer"
    tracker.binotel(binotel_call(803, call_type=1, disposition="ANSWER", billsec=75, extension="101"))
    assert contacts(app, lead_id)[-1] == ("anna", "call", "connected") and not clock_running(app, lead_id)
    with app.engine.connect() as conn:
        out = conn.execute(select(messages.c.direction, messages.c.body).where(messages.c.external_id == "binotel:803"))
        assert tuple(out.one()) == ("out", "Call to the client from extension 101: talked 1 min 15 s")
    # A manager's call to a number with no open lead makes no lead.
    stranger = tracker.binotel(binotel_call(804, number="0939998877", call_type=1, disposition="ANSWER", billsec=5,
                                            extension="101"))  # fmt: skip
    assert stranger.status_code == 200 and count(app, leads) == 1
    assert count(app, channel_events, channel_events.c.outcome == "ignored") == 1


# -- Repeats, forged calls, what is not understood -----------------------------------------------------------------


def test_the_same_call_twice_creates_nothing_new(app: Leadflow, tracker: CallTracker) -> None:
    assert tracker.ringostat(ringostat_call("dup-1")).json()["taken"] == ["new_lead"]
    assert tracker.ringostat(ringostat_call("dup-1")).json()["taken"] == ["repeat"]
    assert tracker.binotel(binotel_call(900)).status_code == 200
    assert tracker.binotel(binotel_call(900)).content == b'{"status":"success"}'  # Binotel's retry: acknowledged
    answered = ringostat_call("dup-2", disposition="ANSWERED", billsec=10, extension="101")
    tracker.ringostat(answered)
    assert tracker.ringostat(answered).json()["taken"] == ["repeat"]
    assert count(app, leads) == 1 and count(app, messages) == 3 and count(app, channel_events) == 3
    assert len(contacts(app, only_lead(app)["id"])) == 1


def test_a_missing_or_wrong_token_is_refused_counted_and_nothing_is_kept(app: Leadflow, tracker: CallTracker) -> None:
    tracker.token = None
    missing = tracker.binotel(binotel_call(1))
    missing_header = tracker.generic(generic_call("x-1"))
    tracker.token = "not-the-token"
    wrong_path = tracker.binotel(binotel_call(1))
    wrong_header = tracker.generic(generic_call("x-1"))
    wrong_ringostat = tracker.ringostat(ringostat_call("x-2"))
    assert [a.status_code for a in tracker.sent] == [401, 401, 403, 403, 403]
    assert missing.json()["error"] == "unauthenticated" and wrong_path.json()["error"] == "forbidden"
    assert all(SECRET not in a.text and "not-the-token" not in a.text for a in tracker.sent)
    assert wrong_header.json()["message"] == "call: generic: wrong token" and missing_header.status_code == 401
    assert wrong_ringostat.status_code == 403
    assert count(app, leads) == 0 and count(app, channel_events) == 0 and count(app, messages) == 0
    with app.engine.connect() as conn:
        counted = {
            r.reason: r.count
            for r in conn.execute(
                select(channel_refusals.c.reason, channel_refusals.c["count"]).where(
                    channel_refusals.c.channel == "call"
                )
            )
        }
    assert counted == {"binotel: missing token": 1, "generic: missing token": 1, "binotel: wrong token": 1,
                       "generic: wrong token": 1, "ringostat: wrong token": 1}  # fmt: skip


def test_what_is_not_understood_is_kept_as_unreadable_and_answered_200(app: Leadflow, tracker: CallTracker) -> None:
    path = f"/api/v1/channels/calls/binotel/{SECRET}"
    garbage = tracker.client.post(path, content=b"\xff\xfe\x00 not a form",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert garbage.status_code == 200 and garbage.content == b'{"status":"success"}'  # else Binotel retries
    settings = tracker.binotel({"requestType": "apiCallSettings", "callDetails": {"externalNumber": CLIENT}})
    no_id = tracker.binotel({"requestType": "apiCallCompleted", "callDetails": {"externalNumber": CLIENT}})
    broken_json = tracker.client.post("/api/v1/channels/calls/ringostat/" + SECRET, content=b'{"call_id": "1",')
    no_status = tracker.generic({"call_id": "g-1", "caller": CLIENT})
    hidden = tracker.ringostat(ringostat_call("hidden-1", number=""))
    assert all(a.status_code == 200 for a in (settings, no_id, broken_json, no_status, hidden))
    assert [a.json()["taken"] for a in (broken_json, no_status, hidden)] == [["unreadable"]] * 3
    assert count(app, leads) == 0 and count(app, messages) == 0
    with app.engine.connect() as conn:
        kept = conn.execute(
            select(channel_events.c.reason, channel_events.c.payload)
            .where(channel_events.c.outcome.in_(("unreadable", "ignored")))
            .order_by(channel_events.c.id)
        ).all()
        outcomes = conn.execute(select(channel_events.c.outcome).order_by(channel_events.c.id)).scalars().all()
    assert outcomes == ["unreadable", "ignored", "unreadable", "unreadable", "unreadable", "unreadable"]
    reasons = [r.reason for r in kept]
    assert len(reasons) == 6 and reasons[0].startswith("not understood: UnicodeDecodeError")
    assert reasons[1] == "ignored: Binotel's apiCallSettings request is not a finished call"
    assert "without callDetails[generalCallID]" in reasons[2] and reasons[3].startswith("not understood: JSONDecode")
    assert "status is missing" in reasons[4] and "hidden caller id" in reasons[5]
    assert kept[1].payload["callDetails"] == {"externalNumber": CLIENT}  # the body is kept as it came


def test_calls_answer_404_when_off_or_for_a_format_leadflow_does_not_read(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(RULES)
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30) as client:
        off = client.post(f"/api/v1/channels/calls/binotel/{SECRET}", data={"requestType": "apiCallCompleted"})
        assert off.status_code == 404 and "set LEADFLOW_CHANNELS__CALLS_SECRET" in off.json()["message"]
        lf.channels = ChannelsConfig(calls_secret=SECRET)
        unknown = client.post(f"/api/v1/channels/calls/zadarma/{SECRET}", json={"call_id": "1"})
        assert unknown.status_code == 404 and "binotel, ringostat, generic" in unknown.json()["message"]
    assert count(lf, channel_refusals) == 0 and count(lf, channel_events) == 0


def test_two_managers_cannot_share_an_extension() -> None:
    text = RULES.replace("extension: 102}", 'extension: "101"}')
    with pytest.raises(RulesError) as refused:
        parse_rules(text, "rules.yaml")
    assert "managers.1.extension: extension '101' is given to both anna and bohdan" in str(refused.value)


def test_a_missed_call_nobody_returns_escalates_like_any_lead(app: Leadflow, tracker: CallTracker) -> None:
    tracker.generic(generic_call("late-1"))
    lead = only_lead(app)
    assert lead["sla_due_at"] - lead["created_at"] == timedelta(minutes=15) and lead["first_contact_at"] is None
    assert escalate_due(app, utcnow() + timedelta(minutes=14)) == 0
    assert escalate_due(app, utcnow() + timedelta(minutes=16)) == 1
    moved = only_lead(app)
    assert owner(app, moved) == "bohdan" and moved["sla_hops"] == 1
