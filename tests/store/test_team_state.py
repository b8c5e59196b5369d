"""The team state routing reads: current figures every time, and memory that does not grow with the leads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.store import team_state
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import managers
from leadflow.store.team_state import add_load, load_team_state
from tests.conftest import load_app

RULES = """
version: 1
teams: [{key: sales, hours: always}]
managers:
  - {key: olena, name: Olena, team: sales, capacity: 1000}
  - {key: taras, name: Taras, team: sales, capacity: 1000}
routing:
  fallback: {team: sales, strategy: round_robin}
"""


def test_states_follow_the_figures_and_one_is_kept_per_manager(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    with app.engine.begin() as conn:
        ids = {m.key: m.id for m in load_team_state(conn, ["sales"], [], "UTC").managers.values()}
        for n in range(1, 201):
            add_load(conn, ids["olena" if n % 3 else "taras"], +1)
            state = load_team_state(conn, ["sales"], [], "UTC").managers
            assert state["olena"].open_leads + state["taras"].open_leads == n
        # Every load above built a new state for the manager who got the lead; only the newest of each is kept.
        assert len(team_state._cache_of(conn).live) <= 2


def test_two_databases_with_the_same_ids_and_times_do_not_share_what_is_remembered(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(RULES)
    url = f"sqlite:///{tmp_path / 'other.db'}"
    migrate(url)
    other = load_app(make_engine(url), parse_rules(RULES.replace("Olena", "Oksana"), "other.yaml"))
    for lf in (app, other):  # the same ids, and the same update time
        with lf.engine.begin() as conn:
            conn.execute(update(managers).values(updated_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC)))
    for lf, name in ((app, "Olena"), (other, "Oksana"), (app, "Olena")):
        with lf.engine.connect() as conn:
            assert load_team_state(conn, ["sales"], [], "UTC").managers["olena"].name == name
    other.engine.dispose()
