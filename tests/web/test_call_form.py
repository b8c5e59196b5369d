"""Recording a call from the lead card over real HTTP: the talk time typed in minutes (as people type numbers) is
kept with the call for the reports' talk minutes and shown in the lead's history; a talk time that is not one is
refused with its field named and records nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.store.tables import activities
from tests.support import THREE_MANAGERS, live_server, web_sign_in, web_user

HTMX = {"HX-Request": "true"}


def _call(client: httpx.Client, lead_id: int, csrf: str, minutes: str, outcome: str = "connected") -> httpx.Response:
    form = {"csrf_token": csrf, "kind": "call", "outcome": outcome, "minutes": minutes}
    return client.post(f"/leads/{lead_id}/contact", data=form, headers=HTMX)


def _talk(app: Leadflow, lead_id: int) -> list[int | None]:
    with app.engine.connect() as conn:
        query = select(activities.c.duration_seconds).where(activities.c.lead_id == lead_id).order_by(activities.c.id)
        return list(conn.execute(query).scalars())


def test_the_talk_time_typed_on_the_card_is_kept_with_the_call(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(THREE_MANAGERS)
    lead_id = take_lead(app, LeadIn(name="Ivan", phone="0671234567"), utcnow()).lead_id
    with app.engine.connect() as conn:
        owner = conn.exec_driver_sql(f"select m.key from leads l join managers m on m.id = l.manager_id "
                                     f"where l.id = {lead_id}").scalar_one()  # fmt: skip
    password = web_user(app, owner, "manager", manager=owner, language="uk")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, owner, password)
        card = client.get(f"/leads/{lead_id}").text
        assert 'name="minutes"' in card and "Тривалість розмови, хв" in card

        for typed in ("-1", "two", "1441", "NaN"):
            refused = _call(client, lead_id, csrf, typed)
            assert refused.status_code == 422, (typed, refused.text)
            assert "minutes" in refused.text
        assert _talk(app, lead_id) == []  # nothing half-written

        answered = _call(client, lead_id, csrf, "3,25")  # a Ukrainian reader types a decimal comma
        assert answered.status_code == 200, answered.text
        assert _call(client, lead_id, csrf, "", "no_answer").status_code == 200  # left empty: not known
        assert _talk(app, lead_id) == [195, None]
        history = client.get(f"/leads/{lead_id}").text
        assert "Дзвінок: Додзвонилися · 3 хвилини" in history  # the history says it in whole minutes
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(activities)).scalar_one() == 2
