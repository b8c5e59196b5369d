"""The team state routing reads: current figures every time, and memory that does not grow with the leads."""

from __future__ import annotations

from collections.abc import Callable

from leadflow.services.context import Leadflow
from leadflow.store import team_state
from leadflow.store.team_state import add_load, load_team_state

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
    before = len(team_state._live_cache)
    with app.engine.begin() as conn:
        ids = {m.key: m.id for m in load_team_state(conn, ["sales"], [], "UTC").managers.values()}
        for n in range(1, 201):
            add_load(conn, ids["olena" if n % 3 else "taras"], +1)
            state = load_team_state(conn, ["sales"], [], "UTC").managers
            assert state["olena"].open_leads + state["taras"].open_leads == n
    # Every load above built a new state for the manager who got the lead; only the newest of each is kept.
    assert len(team_state._live_cache) - before <= 2
