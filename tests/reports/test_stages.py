"""lead_stages as the services leave it: a contacted lead handed on by hand keeps its stage (the funnel does not go
backwards), and the new owner is who enters the next one."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.desk import assign_by_hand
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.sla import record_contact
from leadflow.store.tables import lead_stages, leads, managers
from tests.reports.history import RULES

T = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_a_contacted_lead_handed_on_stays_contacted(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    lead_id = take_lead(app, LeadIn(name="Ivan", phone="+380671234567", product="credit"), T).lead_id
    with app.engine.connect() as conn:
        first = conn.execute(select(managers.c.key).join(leads, leads.c.manager_id == managers.c.id)).scalar_one()
    other = "taras" if first == "olena" else "olena"
    record_contact(app, lead_id, first, "call", "connected", T + timedelta(minutes=5), who=SYSTEM)
    assign_by_hand(app, lead_id, T + timedelta(hours=1), manager=other, reason="holiday", who=SYSTEM)
    set_status(app, lead_id, "qualified", T + timedelta(hours=2), who=SYSTEM)
    with app.engine.connect() as conn:
        keys = {id_: key for key, id_ in conn.execute(select(managers.c.key, managers.c.id))}
        rows = conn.execute(select(lead_stages.c.status, lead_stages.c.manager_id).order_by(lead_stages.c.id)).all()
        status = conn.execute(select(leads.c.status)).scalar_one()
    assert status == "qualified"
    assert [(r.status, keys[r.manager_id]) for r in rows] == [
        ("assigned", first),
        ("contacted", first),
        ("qualified", other),
    ]
