"""The fixed history is what its docstring says: the reports' hand-computed answers rest on it."""

from datetime import UTC, datetime

from sqlalchemy import select

from leadflow.store.tables import lead_stages, leads, managers
from tests.reports.history import History


def test_the_leads_end_as_the_table_says(history: History) -> None:
    with history.app.engine.connect() as conn:
        keys = {id_: key for key, id_ in conn.execute(select(managers.c.key, managers.c.id))}
        rows = conn.execute(select(leads.c.id, leads.c.status, leads.c.manager_id, leads.c.duplicate_of_id,
                                   leads.c.first_contact_by, leads.c.response_seconds, leads.c.response_band,
                                   leads.c.sla_hops, leads.c.utm_campaign).order_by(leads.c.id)).all()  # fmt: skip
    found = [(r.id, r.status, keys.get(r.manager_id), r.duplicate_of_id, keys.get(r.first_contact_by),
              r.response_seconds, r.response_band, r.sla_hops, r.utm_campaign) for r in rows]  # fmt: skip
    assert history.ids == {"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "n1": 6, "n2": 7, "n3": 8, "k6": 9}
    assert found == [
        (1, "converted", "olena", None, "olena", 600, "≤20m", 0, "spring"),
        (2, "converted", "taras", None, "taras", 14400, "≤12h", 0, "spring"),
        (3, "contacted", "taras", None, "taras", 4200, "≤3h", 0, "spring"),
        (4, "contacted", "taras", None, "taras", 1800, "≤3h", 0, "summer"),
        (5, "assigned", "olena", 1, None, None, None, 0, None),
        (6, "converted", "ann", None, "ann", 5400, "≤3h", 0, None),
        (7, "assigned", "mike", None, None, None, None, 2, None),
        (8, "lost", "bob", None, "bob", 300, "≤20m", 0, None),
        (9, "contacted", "taras", None, "taras", 7200, "≤3h", 0, "spring"),
    ]


def test_every_status_a_lead_went_through_is_a_stage_with_its_owner_then(history: History) -> None:
    def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=UTC)

    with history.app.engine.connect() as conn:
        keys = {id_: key for key, id_ in conn.execute(select(managers.c.key, managers.c.id))}
        rows = conn.execute(select(lead_stages).order_by(lead_stages.c.lead_id, lead_stages.c.id)).all()
    found = [(r.lead_id, r.status, r.previous, r.entered_at, r.left_at, keys.get(r.manager_id)) for r in rows]
    assert found == [
        (1, "assigned", None, t(3, 2, 8), t(3, 2, 8, 10), "olena"),
        (1, "contacted", "assigned", t(3, 2, 8, 10), t(3, 3, 9), "olena"),
        (1, "qualified", "contacted", t(3, 3, 9), t(3, 5, 12), "olena"),
        (1, "converted", "qualified", t(3, 5, 12), None, "olena"),
        (2, "assigned", None, t(3, 2, 9), t(3, 2, 13), "taras"),
        (2, "contacted", "assigned", t(3, 2, 13), t(3, 4, 10), "taras"),
        (2, "lost", "contacted", t(3, 4, 10), t(3, 6, 10), "taras"),
        (2, "qualified", "lost", t(3, 6, 10), t(3, 9, 10), "taras"),
        (2, "converted", "qualified", t(3, 9, 10), None, "taras"),
        (3, "assigned", None, t(3, 2, 10), t(3, 2, 10, 5), "olena"),
        (3, "junk", "assigned", t(3, 2, 10, 5), t(3, 2, 11), "olena"),
        (3, "assigned", "junk", t(3, 2, 11), t(3, 2, 11, 10), "taras"),
        (3, "contacted", "assigned", t(3, 2, 11, 10), None, "taras"),
        (4, "assigned", None, t(3, 3, 9), t(3, 3, 9, 30), "olena"),
        (4, "contacted", "assigned", t(3, 3, 9, 30), None, "taras"),
        (5, "assigned", None, t(3, 4, 8), None, "olena"),
        (6, "assigned", None, t(3, 8, 6, 30), t(3, 8, 8), "ann"),
        (6, "contacted", "assigned", t(3, 8, 8), t(3, 10, 15), "ann"),
        (6, "converted", "contacted", t(3, 10, 15), None, "ann"),
        (7, "assigned", None, t(3, 9, 3), None, "bob"),
        (8, "assigned", None, t(3, 9, 14), t(3, 9, 14, 5), "bob"),
        (8, "contacted", "assigned", t(3, 9, 14, 5), t(3, 11, 9), "bob"),
        (8, "lost", "contacted", t(3, 11, 9), None, "bob"),
        (9, "assigned", None, t(3, 28, 23, 30), t(3, 29, 1, 30), "taras"),
        (9, "contacted", "assigned", t(3, 29, 1, 30), None, "taras"),
    ]
