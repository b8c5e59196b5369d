"""Migration 0013 on a database that already holds leads: each lead gets the stage it is in, the first contact's
manager is read back from its event, the UTM campaign becomes a column; and from then on the triggers keep the
stages, on SQLite and PostgreSQL."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from leadflow.store.db import alembic_config, make_engine
from tests.conftest import PG_URL

T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database at migration 0012."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        request.getfixturevalue("postgres_url")  # skips, or fails under LEADFLOW_REQUIRE_POSTGRES, without PostgreSQL
        name = f"leadflow_stages_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "0012")
    yield url
    if request.param == "postgresql":
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_leads_already_there_get_their_stage_and_new_changes_are_recorded(old_database: str) -> None:
    engine = make_engine(old_database)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO teams (id, key, name, created_at, updated_at) VALUES (1, 'kyiv', 'Kyiv', :t, :t)"),
                     {"t": T})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO managers (id, key, name, team_id, regions, products, languages, capacity, active, absent, "
            "created_at, updated_at) VALUES (1, 'olena', 'Olena', 1, '[]', '[]', '[]', 10, true, false, :t, :t)"),
            {"t": T})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO leads (id, channel, utm, raw, status, manager_id, team_id, created_at, updated_at, "
            "first_contact_at) VALUES (1, 'web', :utm, '{}', 'contacted', 1, 1, :t, :u, :u)"),
            {"utm": '{"utm_campaign": "spring"}', "t": T, "u": T.replace(hour=9)})  # fmt: skip
        conn.execute(sa.text("INSERT INTO events (lead_id, type, actor, data, at) VALUES "
                             "(1, 'lead.contacted', 'user:olena', :data, :u)"),
                     {"data": '{"manager": "olena", "kind": "call"}', "u": T.replace(hour=9)})  # fmt: skip
    engine.dispose()
    command.upgrade(alembic_config(old_database), "head")
    engine = make_engine(old_database)
    try:
        with engine.begin() as conn:
            lead = conn.execute(sa.text("SELECT first_contact_by, utm_campaign FROM leads WHERE id = 1")).one()
            assert tuple(lead) == (1, "spring")
            conn.execute(sa.text("UPDATE leads SET status = 'qualified', updated_at = :t WHERE id = 1"),
                         {"t": T.replace(day=3)})  # fmt: skip
            conn.execute(sa.text("UPDATE leads SET updated_at = :t WHERE id = 1"), {"t": T.replace(day=4)})
            stages = conn.execute(sa.text("SELECT status, previous, entered_at, left_at, manager_id FROM lead_stages "
                                          "ORDER BY id")).all()  # fmt: skip
        as_text = [tuple(str(v)[:19] if v is not None else None for v in row) for row in stages]
        assert as_text == [
            ("contacted", None, "2026-03-02 09:00:00", "2026-03-03 08:00:00", "1"),
            ("qualified", "contacted", "2026-03-03 08:00:00", None, "1"),
        ]
    finally:
        engine.dispose()
