"""Real databases for every test: a fresh SQLite file, and a fresh PostgreSQL database when a server is reachable.

PostgreSQL: LEADFLOW_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) names a server
and a maintenance database; the suite creates its own database beside it and drops it at the end.
Set LEADFLOW_REQUIRE_POSTGRES=1 (CI does) to fail instead of skipping when that server cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.reports import Spec
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import metadata
from leadflow.store.team_state import apply_rules_people
from tests.report_sample import registered

PG_URL = os.environ.get("LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("LEADFLOW_REQUIRE_POSTGRES") == "1"
_pg_skip_reason: list[str] = []


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string(hide_password=True)}: {exc}"


# argon2id at its real cost (about a quarter of a second a hash here) would make every signed-in test crawl; the
# tests in this process hash at the lowest cost the library takes. Subprocesses (the CLI) hash at the real one, and
# tests/services/test_users.py checks that a hash made with other parameters is upgraded at sign-in.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", CHEAP_HASHER)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _postgres_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(problem + " (LEADFLOW_REQUIRE_POSTGRES=1)")
        _pg_skip_reason.append(problem)
        pytest.skip(problem)
    name = f"leadflow_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "leadflow.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of each kind; the same test runs on both."""
    if request.param == "sqlite":
        target = tmp_path / "leadflow.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def load_app(engine: Engine, rules: RulesFile) -> Leadflow:
    with engine.begin() as conn:
        apply_rules_people(conn, rules, utcnow())
    return Leadflow(engine=engine, rules=rules)


@pytest.fixture
def make_app(engine: Engine) -> Callable[[str], Leadflow]:
    """Build a Leadflow on the test database from a rules file's text."""

    def build(rules_text: str) -> Leadflow:
        return load_app(engine, parse_rules(rules_text, "test-rules.yaml"))

    return build


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skip_reason:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_pg_skip_reason[0])
        terminalreporter.write_line(
            "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )


@pytest.fixture
def arrivals() -> Iterator[Spec]:
    """The sample report "arrivals" (tests/report_sample.py), registered for the test's length."""
    with registered() as spec:
        yield spec
