"""Train the win-probability model from closed leads (or a CSV of them), check it on held-out leads, keep it."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from leadflow.core.cleaning import clean_lead
from leadflow.core.errors import Conflict, FieldProblem, InvalidInput
from leadflow.core.lead import LEAD_FIELDS, CleanLead, LeadIn
from leadflow.core.predictive import KIND, Metrics, WinModel, evaluate, split_holdout, train
from leadflow.core.rules import RulesFile
from leadflow.services.importing import csv_rows
from leadflow.store.db import READ_ONLY
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import leads, scoring_models

MIN_PER_OUTCOME = 5  # fewer won (or lost) leads than this cannot be split into a training and a checking part
_MAX_CSV_PROBLEMS = 20
_WON = {"won": True, "win": True, "lost": False, "loss": False}
_FLAG = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}
_HISTORY_COLUMNS = [leads.c[name] for name in (
    "channel", "source", "external_id", "name", "phone", "phone_type", "email", "company", "region", "product",
    "language", "budget", "message", "utm",
)]  # fmt: skip


@dataclass(frozen=True)
class TrainingReport:
    model_id: int
    model: WinModel
    metrics: Metrics  # measured on held-out leads the checking model never saw
    trained_on: int  # the stored model learned from all of them
    won: int
    lost: int
    source: str  # "database" or "csv:<file name>"

    def summary(self) -> str:
        """What the CLI prints: how much history, how good on held-out leads, what matters most."""
        m = self.metrics
        origin = "the database" if self.source == "database" else self.source.removeprefix("csv:")
        lines = [
            f"Trained a win-probability model on {self.trained_on:,} closed leads "
            f"({self.won:,} won, {self.lost:,} lost; from {origin}).",
            f"Checked on {m.n:,} held-out leads ({m.positives:,} won), with a model trained on the other "
            f"{self.trained_on - m.n:,}:",
            f"  ROC AUC      {m.auc:.3f}   (0.5 is guessing, 1.0 ranks every won lead above every lost one)",
            f"  Brier score  {m.brier:.3f}   (lower is better; always saying the win rate scores "
            f"{m.brier_baseline:.3f})",
            f"  calibration  off by {m.calibration_error * 100:.1f} points on average:",
            f"    {'predicted':>9}  {'leads':>7}  {'said':>4}  {'won':>4}",
        ]
        for b in m.calibration:
            band = f"{b.lo * 100:.0f}-{b.hi * 100:.0f}%"
            lines.append(
                f"    {band:>9}  {b.count:>7,}  {b.predicted_mean * 100:>3.0f}%  {b.observed_rate * 100:>3.0f}%"
            )
        if m.n < 100:
            lines.append(
                f"  With only {m.n} held-out leads these figures are rough (the AUC can be off by 0.1 either way);"
                " a few hundred closed leads make them reliable."
            )
        up, down = self.model.strongest(5)
        lines.append("Raise the chance most: " + (", ".join(f"{n} ({w:+.2f})" for n, w in up) or "nothing"))
        lines.append("Lower it most:         " + (", ".join(f"{n} ({w:+.2f})" for n, w in down) or "nothing"))
        lines.append(
            f"Model #{self.model_id} is now the active one: new leads get their win probability from it "
            "(while scoring.predictive is on in the rules file)."
        )
        return "\n".join(lines)


def closed_history(engine: Engine, rules: RulesFile) -> list[tuple[CleanLead, bool]]:
    """Every lead whose status the funnel marks won or lost, oldest first, with its outcome."""
    outcome = {s.key: s.outcome == "won" for s in rules.funnel if s.outcome is not None}
    if not outcome:
        return []
    query = select(*_HISTORY_COLUMNS, leads.c.status).where(leads.c.status.in_(outcome)).order_by(leads.c.id)
    with engine.connect().execution_options(**READ_ONLY) as conn:
        return [(lead_row_to_clean(row), outcome[row["status"]]) for row in conn.execute(query).mappings()]


def read_csv_history(path: Path, default_region: str = "UA") -> list[tuple[CleanLead, bool]]:
    """Closed leads from a CSV: the lead columns plus `outcome` (won/lost) or `won` (1/0).

    Rows are cleaned as intake cleans them, so the model sees the same features it will score. Every bad row
    is reported at once, each with its line number.
    """
    examples: list[tuple[CleanLead, bool]] = []
    problems: list[FieldProblem] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for line, row in csv_rows(fh):
            if "outcome" not in row and "won" not in row:
                raise InvalidInput.one(
                    "outcome", f"{path.name} needs an 'outcome' column (won or lost) or a 'won' column (1 or 0)"
                )
            try:
                won = _outcome(row)
                data: dict[str, Any] = {k: v for k, v in row.items() if k in LEAD_FIELDS and k != "extra" and v}
                data.setdefault("channel", "import")  # as `leadflow import` records them
                clean = clean_lead(LeadIn.model_validate(data), default_region)
                if clean.problems:  # intake would keep such a lead; a model must not learn from a guess
                    raise InvalidInput(list(clean.problems))
                examples.append((clean, won))
            except ValidationError as exc:
                problems += [
                    FieldProblem(".".join(map(str, e["loc"])) or "row", f"line {line}: {e['msg']}")
                    for e in exc.errors()
                ]
            except InvalidInput as exc:
                problems += [FieldProblem(p.field, f"line {line}: {p.reason}") for p in exc.problems]
            if len(problems) >= _MAX_CSV_PROBLEMS:
                break
    if problems:
        raise InvalidInput(problems)
    return examples


def _outcome(row: dict[str, str]) -> bool:
    if "outcome" in row:
        value = row["outcome"].casefold()
        if value not in _WON:
            raise InvalidInput.one("outcome", f"outcome '{row['outcome']}' is neither won nor lost")
        return _WON[value]
    value = row["won"].casefold()
    if value not in _FLAG:
        raise InvalidInput.one("won", f"won '{row['won']}' is neither 1 nor 0")
    return _FLAG[value]


def train_and_store(
    engine: Engine, rules: RulesFile, now: datetime, *, csv_path: Path | None = None, holdout: float = 0.25,
    min_examples: int = 50, l2: float = 1.0,
) -> TrainingReport:  # fmt: skip
    """Measure on a held-out part, then keep a model trained on all the history as the active one."""
    if csv_path is not None:
        examples, source = read_csv_history(csv_path, rules.default_region), f"csv:{csv_path.name}"
    else:
        examples, source = closed_history(engine, rules), "database"
    won = sum(1 for _, w in examples if w)
    lost = len(examples) - won
    _check_enough(len(examples), won, lost, min_examples, rules, source)

    train_part, held = split_holdout(examples, holdout, seed=0)
    metrics = evaluate(train(train_part, l2=l2), held)
    model = train(examples, l2=l2)
    record = {
        "holdout": metrics.to_json(), "holdout_fraction": holdout, "source": source, "won": won, "lost": lost,
    }  # fmt: skip
    with engine.begin() as conn:
        # Two trainings at once may both end active; active_model() takes the newest, so that is harmless.
        conn.execute(update(scoring_models).where(scoring_models.c.active.is_(True)).values(active=False))
        model_id = conn.execute(
            scoring_models.insert().returning(scoring_models.c.id),
            {"kind": KIND, "model": model.to_json(), "metrics": record, "trained_on": len(examples),
             "active": True, "created_at": now},
        ).scalar_one()  # fmt: skip
    return TrainingReport(int(model_id), model, metrics, len(examples), won, lost, source)


def _check_enough(total: int, won: int, lost: int, min_examples: int, rules: RulesFile, source: str) -> None:
    if source == "database":
        closing = ", ".join(f"{s.key} ({s.outcome})" for s in rules.funnel if s.outcome) or "none"
        where = f"closed leads in the database (statuses that close a lead as won or lost: {closing})"
        hint = "close more leads as won or lost, or train from a CSV of past leads with --csv"
    else:
        where, hint = f"closed leads in {source.removeprefix('csv:')}", "add more past leads to the file"
    if total < min_examples:
        raise Conflict(f"only {total} {where}; the model needs at least {min_examples}: {hint}")
    if min(won, lost) < MIN_PER_OUTCOME:
        raise Conflict(
            f"{won} won and {lost} lost {where}; the model needs at least {MIN_PER_OUTCOME} of each to learn what "
            f"tells them apart: {hint}"
        )


# Parsed models by database and id: rows are never changed after they are written, so an id names one model.
# Keyed by engine as well, since two databases both have a model #1.
_cache: weakref.WeakKeyDictionary[Engine, tuple[int, WinModel | None]] = weakref.WeakKeyDictionary()


def active_model(bind: Engine | Connection) -> WinModel | None:
    """The newest active model, or None; cheap enough to call for every lead.

    The query walks the primary key down from the newest row and stops at the first active one; training
    writes the new model as the newest row, so that is one row read. The parsed model is cached by id.

    Pass intake's connection to read inside its transaction. A model of another feature set (trained by an
    older leadflow) is ignored until it is retrained.
    """
    query = (
        select(scoring_models.c.id)
        .where(scoring_models.c.active.is_(True))
        .order_by(scoring_models.c.id.desc())
        .limit(1)
    )
    if isinstance(bind, Connection):
        return _load(bind, bind.engine, bind.execute(query).scalar())
    with bind.connect().execution_options(**READ_ONLY) as conn:
        return _load(conn, bind, conn.execute(query).scalar())


def _load(conn: Connection, engine: Engine, model_id: int | None) -> WinModel | None:
    if model_id is None:
        return None
    cached = _cache.get(engine)
    if cached is not None and cached[0] == model_id:
        return cached[1]
    data = conn.execute(select(scoring_models.c.model).where(scoring_models.c.id == model_id)).scalar_one()
    try:
        model: WinModel | None = WinModel.from_json(data)
    except (ValueError, KeyError, TypeError):
        model = None
    _cache[engine] = (model_id, model)
    return model


def win_prediction(bind: Engine | Connection, lead: CleanLead) -> tuple[float, list[dict[str, Any]]] | None:
    """The active model's win probability and top factors for a lead; None until a model is trained."""
    model = active_model(bind)
    if model is None:
        return None
    prediction = model.predict(lead)
    return prediction.probability, prediction.factors_json()


class Predictor:
    """win_prediction bound to a database, for Leadflow.predict, with the active model held in the process.

    Looking the model up costs a query and a pooled connection; doing it for every lead was a tenth of intake's
    time. The model is looked up again at most every `refresh_seconds` (a model trained by `leadflow train` in
    another process is in use within that time) and at once after refresh(), which training in this process calls.
    """

    def __init__(self, engine: Engine, refresh_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._model: WinModel | None = None
        self._checked: float | None = None

    def refresh(self) -> None:
        self._checked = None

    def model(self) -> WinModel | None:
        now = self.clock()
        if self._checked is None or now - self._checked >= self.refresh_seconds:
            self._model = active_model(self.engine)
            self._checked = now
        return self._model

    def __call__(self, lead: CleanLead) -> tuple[float, list[dict[str, Any]]] | None:
        model = self.model()
        if model is None:
            return None
        prediction = model.predict(lead)
        return prediction.probability, prediction.factors_json()


def predictor(engine: Engine) -> Predictor:
    """The predictor Leadflow.predict holds for a database."""
    return Predictor(engine)
