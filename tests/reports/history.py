"""A small fixed history for the reports' tests, made through the real services with a frozen clock.

Two teams: Kyiv (Europe/Kyiv, head Iryna; Olena and Taras) and New York (America/New_York, head Mike; Ann and Bob).
Products route the leads: credit to Kyiv (rule `credit`), travel to New York (rule `travel`), both round robin.
Only New York's leads have a first-contact deadline (15 minutes, one hop, then the head), so escalations happen
only where this history says. Funnel: new, assigned, contacted, qualified, converted (won), junk, lost (lost).

What happens, in UTC (local time in brackets; Kyiv moves to summer time on 03-29 at 01:00 UTC, New York on 03-08
at 07:00 UTC). Every figure a report gives on this history can be worked out by hand from this table; the tests
write out their arithmetic. Lead ids follow the order of creation: k1=1, k2=2, k3=3, k4=4, k5=5, n1=6, n2=7, n3=8,
k6=9 (History.ids holds them).

  k1  03-02 08:00 (10:00)  kyiv  web/site/spring      olena (rr). Call 08:10 connected, 300 s: first contact after
                                                      10 min (≤20m). Qualified 03-03 09:00. Converted 03-05 12:00:
                                                      1000.00, 2 units, margin 300.00.
  k2  03-02 09:00 (11:00)  kyiv  web/site/spring      taras (rr). Call 10:00 no answer; call 13:00 connected, 600 s:
                                                      4 h (≤12h). Lost 03-04 10:00 "price"; reopened (qualified)
                                                      03-06 10:00; converted 03-09 10:00: 500.00.
  k3  03-02 10:00 (12:00)  kyiv  facebook/ads/spring  olena (rr). Junk 10:05 "spam?"; restored 11:00 and routed to
                                                      taras (kind restore). Taras call 11:10 connected, 120 s: 70 min
                                                      (≤3h). Stays contacted.
  k4  03-03 09:00 (11:00)  kyiv  facebook/ads/summer  olena (rr). By hand to taras 09:05. Taras call 09:30 connected,
                                                      60 s: 30 min (≤3h), by another than the first owner. Contacted.
  k5  03-04 08:00 (10:00)  kyiv  web/site/-           k1's client again (same phone, k1 still open): a duplicate of
                                                      k1, given to olena. Never contacted; stays assigned.
  n1  03-08 06:30 (01:30 EST) ny web/site/-           ann (rr). Call 08:00 (04:00 EDT), 420 s: 90 min (≤3h).
                                                      Converted 03-10 15:00: 2000.00, 1 unit.
  n2  03-09 03:00 (03-08 23:00 EDT) ny telegram/bot/- bob (rr). No contact: escalated 03:16 to ann, and at 03:32 the
                                                      chain ends with Mike, head (lead.chain_exhausted). Never
                                                      contacted; stays assigned (2 escalation hops).
  n3  03-09 14:00 (10:00 EDT) ny web/site/-           bob (rr). Call 14:05 connected (no duration): 5 min (≤20m).
                                                      Lost 03-11 09:00 "chose a competitor".
  k6  03-28 23:30 (03-29 01:30 EET) kyiv web/site/spring
                                                      taras (rr). Call 03-29 01:30 UTC (04:30 EEST: 3 h by the wall
                                                      clock across the change, 2 h really: ≤3h), 200 s. Contacted.

lead_stages then holds (status entered at, UTC): k1 assigned 03-02 08:00, contacted 08:10, qualified 03-03 09:00,
converted 03-05 12:00; k2 assigned 03-02 09:00, contacted 13:00, lost 03-04 10:00, qualified 03-06 10:00, converted
03-09 10:00; k3 assigned 03-02 10:00 (olena), junk 10:05, assigned 11:00 (taras), contacted 11:10; k4 assigned 03-03
09:00 (olena), contacted 09:30 (taras); k5 assigned 03-04 08:00; n1 assigned 03-08 06:30, contacted 08:00, converted
03-10 15:00; n2 assigned 03-09 03:00; n3 assigned 03-09 14:00, contacted 14:05, lost 03-11 09:00; k6 assigned 03-28
23:30, contacted 03-29 01:30. Each row's manager is the owner when it was entered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.desk import assign_by_hand
from leadflow.services.intake import take_lead
from leadflow.services.leads import Sale, restore_lead, set_status
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import assignments, leads, managers

RULES = """
default_timezone: Europe/Kyiv
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: qualified}
  - {key: converted, open: false, outcome: won}
  - {key: junk, open: false}
  - {key: lost, open: false, outcome: lost}
teams:
  - {key: kyiv, name: Kyiv, timezone: Europe/Kyiv, head: iryna, hours: always}
  - {key: ny, name: New York, timezone: America/New_York, head: mike, hours: always}
managers:
  - {key: olena, name: Olena, team: kyiv, capacity: 10, email: olena@example.com}
  - {key: taras, name: Taras, team: kyiv, capacity: 10}
  - {key: iryna, name: Iryna, team: kyiv, capacity: 10, email: iryna@example.com}
  - {key: ann, name: Ann, team: ny, capacity: 10}
  - {key: bob, name: Bob, team: ny, capacity: 10}
  - {key: mike, name: Mike, team: ny, capacity: 10, email: mike@example.com}
routing:
  rules:
    - {key: credit, team: kyiv, strategy: round_robin, when: {product: credit}, managers: [olena, taras]}
    - {key: travel, team: ny, strategy: round_robin, when: {product: travel}, managers: [ann, bob]}
sla:
  default: {first_contact: 30d, count: wall_clock}
  overrides:
    - {team: ny, first_contact: 15m, count: wall_clock, chain: {max_hops: 1, final: team_head}}
"""


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class History:
    app: Leadflow
    ids: dict[str, int] = field(default_factory=dict)  # "k1" -> lead id
    owner_at_start: dict[str, str] = field(default_factory=dict)  # "k1" -> the manager routing chose
    managers: dict[str, int] = field(default_factory=dict)  # "olena" -> manager id


def _lead(app: Leadflow, when: datetime, phone: str, product: str, channel: str = "web", source: str = "site",
          campaign: str | None = None, name: str = "Client") -> int:  # fmt: skip
    lead_in = LeadIn(name=name, phone=phone, product=product, channel=channel, source=source, utm_campaign=campaign)
    return take_lead(app, lead_in, when).lead_id


def build_history(make_app: Callable[[str], Leadflow]) -> History:
    app = make_app(RULES)
    h = History(app)
    ids = h.ids

    def call(lead: str, who: str, when: datetime, outcome: str = "connected", seconds: int | None = None) -> None:
        record_contact(app, ids[lead], who, "call", outcome, when, who=SYSTEM, duration_seconds=seconds)

    ids["k1"] = _lead(app, at(3, 2, 8), "+380671000001", "credit", campaign="spring", name="Ivan")
    ids["k2"] = _lead(app, at(3, 2, 9), "+380671000002", "credit", campaign="spring")
    ids["k3"] = _lead(app, at(3, 2, 10), "+380671000003", "credit", "facebook", "ads", "spring")
    h.owner_at_start.update(_owners(app, ids))
    call("k1", h.owner_at_start["k1"], at(3, 2, 8, 10), seconds=300)
    call("k2", h.owner_at_start["k2"], at(3, 2, 10), "no_answer")
    set_status(app, ids["k3"], "junk", at(3, 2, 10, 5), who=SYSTEM, reason="spam?")
    restore_lead(app, ids["k3"], at(3, 2, 11), who=SYSTEM)
    owner_k3 = _owner(app, ids["k3"])
    call("k3", owner_k3, at(3, 2, 11, 10), seconds=120)
    call("k2", h.owner_at_start["k2"], at(3, 2, 13), seconds=600)
    ids["k4"] = _lead(app, at(3, 3, 9), "+380671000005", "credit", "facebook", "ads", "summer")
    h.owner_at_start.update(_owners(app, {"k4": ids["k4"]}))
    other = "taras" if h.owner_at_start["k4"] == "olena" else "olena"
    assign_by_hand(app, ids["k4"], at(3, 3, 9, 5), manager=other, reason="olena is at a meeting", who=SYSTEM)
    call("k4", other, at(3, 3, 9, 30), seconds=60)
    set_status(app, ids["k1"], "qualified", at(3, 3, 9), who=SYSTEM)
    ids["k5"] = _lead(app, at(3, 4, 8), "+380671000001", "credit", name="Ivan")
    h.owner_at_start.update(_owners(app, {"k5": ids["k5"]}))
    set_status(app, ids["k2"], "lost", at(3, 4, 10), who=SYSTEM, reason="price")
    set_status(app, ids["k1"], "converted", at(3, 5, 12), who=SYSTEM,
               sale=Sale(Decimal("1000.00"), 2, Decimal("300.00")))  # fmt: skip
    set_status(app, ids["k2"], "qualified", at(3, 6, 10), who=SYSTEM)

    ids["n1"] = _lead(app, at(3, 8, 6, 30), "+12125550101", "travel")
    h.owner_at_start.update(_owners(app, {"n1": ids["n1"]}))
    call("n1", h.owner_at_start["n1"], at(3, 8, 8), seconds=420)
    ids["n2"] = _lead(app, at(3, 9, 3), "+12125550102", "travel", "telegram", "bot")
    h.owner_at_start.update(_owners(app, {"n2": ids["n2"]}))
    escalate_due(app, at(3, 9, 3, 16))
    escalate_due(app, at(3, 9, 3, 32))
    set_status(app, ids["k2"], "converted", at(3, 9, 10), who=SYSTEM, sale=Sale(Decimal("500.00")))
    ids["n3"] = _lead(app, at(3, 9, 14), "+12125550103", "travel")
    h.owner_at_start.update(_owners(app, {"n3": ids["n3"]}))
    call("n3", h.owner_at_start["n3"], at(3, 9, 14, 5))
    set_status(app, ids["n1"], "converted", at(3, 10, 15), who=SYSTEM, sale=Sale(Decimal("2000.00"), 1))
    set_status(app, ids["n3"], "lost", at(3, 11, 9), who=SYSTEM, reason="chose a competitor")

    ids["k6"] = _lead(app, at(3, 28, 23, 30), "+380671000006", "credit", campaign="spring")
    h.owner_at_start.update(_owners(app, {"k6": ids["k6"]}))
    call("k6", h.owner_at_start["k6"], at(3, 29, 1, 30), seconds=200)
    with app.engine.connect() as conn:
        h.managers = {key: id_ for key, id_ in conn.execute(select(managers.c.key, managers.c.id))}
    return h


def _owner(app: Leadflow, lead_id: int) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(select(managers.c.key).join(leads, leads.c.manager_id == managers.c.id)
                                .where(leads.c.id == lead_id)).scalar_one())  # fmt: skip


def _owners(app: Leadflow, ids: dict[str, int]) -> dict[str, str]:
    """The first manager each lead was given to."""
    with app.engine.connect() as conn:
        found = {}
        for name, lead_id in ids.items():
            found[name] = conn.execute(
                select(managers.c.key).join(assignments, assignments.c.manager_id == managers.c.id)
                .where(assignments.c.lead_id == lead_id).order_by(assignments.c.id).limit(1)
            ).scalar_one()  # fmt: skip
        return found
