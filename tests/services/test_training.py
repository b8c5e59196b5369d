"""Training the win-probability model from the database and from CSV, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, select

from leadflow.core.errors import Conflict, InvalidInput
from leadflow.core.lead import CleanLead, LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.core.predictive import WinModel
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.training import (
    Predictor,
    active_model,
    closed_history,
    predictor,
    read_csv_history,
    train_and_store,
    win_prediction,
)
from leadflow.store.tables import leads, scoring_models
from tests.support import THREE_MANAGERS

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


def history_leads(n: int, seed: int = 4) -> list[tuple[LeadIn, bool]]:
    """Leads with a strong known signal: referrals and big budgets win, ads lose; region and product are noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        channel = rng.choice(("web", "ads", "referral"))
        budget = rng.choice((None, 5_000, 50_000, 500_000))
        z = -0.5 + {"referral": 2.5, "ads": -2.0}.get(channel, 0.0) + (1.5 if budget == 500_000 else 0.0)
        lead = LeadIn(
            channel=channel, source="google" if channel == "ads" else None, phone=f"+38067{2000000 + i}",
            email=f"client{seed}.{i}@example.com", region=rng.choice(("UA", "PL")),
            product=rng.choice(("credit", "leasing")), budget=budget, utm_medium="cpc" if channel == "ads" else None,
        )  # fmt: skip
        out.append((lead, rng.random() < 1 / (1 + math.exp(-z))))
    return out


def close_leads(lf: Leadflow, history: list[tuple[LeadIn, bool]], won: str = "converted", lost: str = "lost") -> None:
    """Take each lead in as intake does, then close it the way a manager would."""
    for lead, outcome in history:
        result = take_lead(lf, lead, NOW)
        assert result.created and result.status != "junk"
        set_status(lf, result.lead_id, won if outcome else lost, NOW, who=SYSTEM)


def test_trains_on_closed_leads_stores_the_model_and_scores_new_leads(lf: Leadflow) -> None:
    history = history_leads(300)
    close_leads(lf, history)
    # Open and junk leads are not history: their outcome is not known yet.
    take_lead(lf, LeadIn(channel="referral", phone="0509999999"), NOW)
    set_status(lf, take_lead(lf, LeadIn(phone="0509999998"), NOW).lead_id, "junk", NOW, reason="test", who=SYSTEM)

    examples = closed_history(lf.engine, lf.rules)
    assert [won for _, won in examples] == [won for _, won in history]
    report = train_and_store(lf.engine, lf.rules, NOW)

    won = sum(w for _, w in history)
    assert (report.trained_on, report.won, report.lost, report.source) == (300, won, 300 - won, "database")
    assert report.metrics.n == 75 and report.metrics.auc > 0.75
    with lf.engine.connect() as conn:
        row = conn.execute(select(scoring_models)).mappings().one()
    assert (row["id"], row["kind"], row["active"], row["trained_on"]) == (report.model_id, "logistic", True, 300)
    assert row["created_at"] == NOW
    assert row["metrics"]["holdout"]["auc"] == report.metrics.auc
    assert row["metrics"]["holdout"]["n"] == 75 and len(row["metrics"]["holdout"]["calibration"]) >= 2
    assert WinModel.from_json(row["model"]) == report.model

    model = active_model(lf.engine)
    assert model == report.model
    with lf.engine.begin() as conn:  # intake calls it inside its own transaction
        assert active_model(conn) is model
    referral = model.predict(CleanLead(channel="referral", budget=None, region="UA"))
    ads = model.predict(CleanLead(channel="ads", source="google", utm={"utm_medium": "cpc"}))
    assert referral.probability > 0.6 > 0.2 > ads.probability
    assert any(f.text.startswith("channel=referral raised it") for f in referral.factors)

    text = report.summary()
    assert f"on 300 closed leads ({won} won, {300 - won} lost; from the database)" in text
    assert f"ROC AUC      {report.metrics.auc:.3f}" in text
    assert f"Model #{report.model_id} is now the active one" in text


def test_a_new_training_replaces_the_active_model(lf: Leadflow, tmp_path: Path) -> None:
    assert active_model(lf.engine) is None
    close_leads(lf, history_leads(80))
    first = train_and_store(lf.engine, lf.rules, NOW)
    assert active_model(lf.engine) == first.model
    second = train_and_store(lf.engine, lf.rules, NOW, l2=5.0)
    assert second.model_id > first.model_id
    assert active_model(lf.engine) == second.model != first.model  # the cache noticed the new id
    with lf.engine.connect() as conn:
        rows = conn.execute(select(scoring_models.c.id, scoring_models.c.active).order_by(scoring_models.c.id))
        assert [tuple(r) for r in rows] == [(first.model_id, False), (second.model_id, True)]


def test_intake_scores_new_leads_with_the_active_model(lf: Leadflow) -> None:
    lead = CleanLead(channel="referral", budget=None)
    assert win_prediction(lf.engine, lead) is None and predictor(lf.engine)(lead) is None
    close_leads(lf, history_leads(120))
    report = train_and_store(lf.engine, lf.rules, NOW)
    probability, factors = predictor(lf.engine)(lead) or (0.0, [])
    assert probability == report.model.probability(lead)
    assert factors[0]["text"].startswith(factors[0]["feature"]) and "contribution" in factors[0]
    with lf.engine.begin() as conn:
        assert win_prediction(conn, lead) == (probability, factors)

    scored = Leadflow(engine=lf.engine, rules=lf.rules, predict=predictor(lf.engine))
    taken = take_lead(scored, LeadIn(channel="referral", phone="+380501112233"), NOW)
    with lf.engine.connect() as conn:
        row = conn.execute(select(leads).where(leads.c.id == taken.lead_id)).mappings().one()
    assert row["win_probability"] == pytest.approx(report.model.probability(CleanLead(
        channel="referral", phone="+380501112233", phone_type="mobile")))  # fmt: skip
    assert any(f["feature"] == "channel=referral" and f["contribution"] > 0 for f in row["win_factors"])


def test_the_predictor_holds_the_model_and_looks_again_after_a_while(lf: Leadflow) -> None:
    now = [100.0]
    held = Predictor(lf.engine, refresh_seconds=5.0, clock=lambda: now[0])
    lead = CleanLead(channel="referral", budget=None)
    queries: list[str] = []
    listen = lambda *args: queries.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    event.listen(lf.engine, "before_cursor_execute", listen)
    try:
        assert held(lead) is None
        assert held(lead) is None and len(queries) == 1  # no model yet, and asked once
        close_leads(lf, history_leads(120))
        report = train_and_store(lf.engine, lf.rules, NOW)
        queries.clear()
        now[0] += 4.9
        assert held(lead) is None and not queries  # trained by someone else: noticed after the refresh time
        now[0] += 0.2
        assert held(lead) == (report.model.probability(lead), report.model.predict(lead).factors_json())
        assert len(queries) == 2  # the active model's id, then the model once
        queries.clear()
        assert held(lead) is not None and not queries
        held.refresh()
        assert held(lead) is not None and len(queries) == 1  # asked again at once, the parsed model reused
    finally:
        event.remove(lf.engine, "before_cursor_execute", listen)


def test_too_little_history_is_refused_with_what_to_do(lf: Leadflow) -> None:
    close_leads(lf, history_leads(12))
    with pytest.raises(Conflict, match=r"only 12 closed leads in the database .*converted \(won\), lost \(lost\)"):
        train_and_store(lf.engine, lf.rules, NOW)
    with pytest.raises(Conflict, match="close more leads as won or lost, or train from a CSV"):
        train_and_store(lf.engine, lf.rules, NOW)
    assert active_model(lf.engine) is None


def test_history_of_one_outcome_is_refused(lf: Leadflow) -> None:
    close_leads(lf, [(lead, True) for lead, _ in history_leads(55)])
    with pytest.raises(Conflict, match=r"55 won and 0 lost closed leads .* at least 5 of each"):
        train_and_store(lf.engine, lf.rules, NOW)


def test_history_follows_the_funnel_of_the_rules_file(make_app: Callable[[str], Leadflow]) -> None:
    funnel = """
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: junk, open: false}
  - {key: paid, open: false, outcome: won}
  - {key: refused, open: false, outcome: lost}
  - {key: converted, open: false}
"""
    lf = make_app(THREE_MANAGERS + funnel)
    leads = history_leads(4)
    close_leads(lf, leads[:2], won="paid", lost="refused")
    close_leads(lf, leads[2:], won="converted", lost="converted")  # closed, but with no outcome: not history
    assert [won for _, won in closed_history(lf.engine, lf.rules)] == [won for _, won in leads[:2]]


# ---- CSV -------------------------------------------------------------------------------------------------

HEADER = "channel,source,phone,email,region,product,budget,message,utm_medium,outcome\n"


def write_csv(path: Path, history: list[tuple[LeadIn, bool]]) -> Path:
    lines = [HEADER]
    for lead, won in history:
        lines.append(
            f"{lead.channel},{lead.source or ''},{lead.phone},{lead.email},{lead.region},{lead.product},"
            f"{lead.budget or ''},,{lead.utm_medium or ''},{'won' if won else 'lost'}\n"
        )
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_trains_from_a_csv_of_past_leads(lf: Leadflow, tmp_path: Path) -> None:
    history = history_leads(200, seed=9)
    report = train_and_store(lf.engine, lf.rules, NOW, csv_path=write_csv(tmp_path / "history.csv", history))
    assert (report.trained_on, report.source) == (200, "csv:history.csv")
    assert report.metrics.auc > 0.75
    assert active_model(lf.engine) == report.model
    with lf.engine.connect() as conn:
        assert conn.execute(select(scoring_models.c.metrics)).scalar_one()["source"] == "csv:history.csv"


def test_csv_rows_are_cleaned_like_intake_and_accept_a_won_column(tmp_path: Path) -> None:
    path = tmp_path / "won.csv"
    path.write_text("channel;phone;region;won\nreferral;067 123 45 67;ua;1\n;+48 22 123 45 67;;0\n", encoding="utf-8")
    (first, won_first), (second, won_second) = read_csv_history(path, default_region="UA")
    assert (first.channel, first.phone, first.phone_type, first.region, won_first) == (
        "referral", "+380671234567", "mobile", "UA", True,
    )  # fmt: skip
    assert (second.channel, second.phone_type, won_second) == ("import", "landline", False)


def test_bad_csv_rows_are_all_named_by_line(lf: Leadflow, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "history.csv", history_leads(60))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace(",won\n", ",maybe\n").replace(",lost\n", ",maybe\n")  # line 4 of the file
    lines[6] = "web,,067 12,,,,,,,won\n"  # line 7: half a phone number
    lines[9] = "web,,0671111111,,,,lots,,,lost\n"  # line 10: a budget that is not a number
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        train_and_store(lf.engine, lf.rules, NOW, csv_path=path)
    message = str(caught.value)
    assert "line 4: outcome 'maybe' is neither won nor lost (field: outcome)" in message
    assert "line 7: phone '067 12' is not a valid number for region UA (field: phone)" in message
    assert "line 10: Input should be a valid decimal (field: budget)" in message
    assert active_model(lf.engine) is None


def test_csv_without_an_outcome_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("channel,phone\nweb,0671234567\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="needs an 'outcome' column \\(won or lost\\) or a 'won' column"):
        read_csv_history(path)
