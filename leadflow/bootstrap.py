"""Open a Leadflow from settings: read the rules, migrate the database, write the rules' people."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import RulesError, parse_rules
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.training import predictor
from leadflow.settings import Settings
from leadflow.store.db import make_engine, migrate
from leadflow.store.team_state import apply_rules_people, lock_teams
from leadflow.store.writer import GroupWriter


def read_rules(path: Path) -> RulesFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    return parse_rules(text, str(path))


def open_app(settings: Settings, *, migrate_schema: bool = True, serving: bool = False) -> Leadflow:
    """The Leadflow the settings describe. `serving`: this process serves intake over HTTP (`leadflow serve`), so
    intake's writes go through one group writer (see store/writer.py)."""
    rules = read_rules(settings.rules)
    if migrate_schema:
        migrate(settings.database_url)
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    with engine.begin() as conn:
        apply_rules_people(conn, rules, utcnow())
    return assemble(engine, rules, settings, serving=serving)


def assemble(engine: Engine, rules: RulesFile, settings: Settings, *, serving: bool) -> Leadflow:
    """The Leadflow for an engine and rules, as open_app builds it (benchmarks build theirs here too, so that they
    measure what runs)."""
    writer = None
    if serving:
        # PostgreSQL: each group locks every team the rules route to, sorted, before its first piece; SQLite has
        # one writer already.
        teams = sorted({t.key for t in rules.teams})
        opening = None if engine.dialect.name == "sqlite" else partial(lock_teams, team_keys=teams)
        writer = GroupWriter(engine, opening=opening).start()
    return Leadflow(engine=engine, rules=rules, notify=settings.notify, base_url=settings.public_url,
                    predict=predictor(engine), writer=writer, channels=settings.channels)  # fmt: skip
