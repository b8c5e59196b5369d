"""Every command answers a person's mistake with one line and a non-zero exit code, never a traceback.

The commands are read from the Typer app, so a command added later is checked with the same mistakes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy.engine import make_url
from typer.core import TyperArgument
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.cli_errors import explain
from leadflow.settings import get_settings
from tests.conftest import PG_URL

LEADFLOW = str(Path(sys.executable).parent / "leadflow")

RULES = """\
teams:
  - {key: sales, name: Sales}
managers:
  - {key: anna, name: Anna, team: sales}
routing:
  rules:
    - {key: all, team: sales}
"""
LEAD = '{"name": "Ivan", "phone": "+380671234567", "product": "credit"}'
BAD_JSON = '{"name": "Ivan", phone'
MISSING_DATABASE = make_url(PG_URL).set(database=f"leadflow_missing_{uuid.uuid4().hex[:8]}")
DATABASE_MISTAKES = {
    "not a URL": "not a database url",
    "unknown kind of database": "nosuchdb://somewhere/x",
    "unreachable server": "postgresql+psycopg://postgres@127.0.0.1:1/leadflow",
    "database that does not exist": MISSING_DATABASE.render_as_string(hide_password=False),
    "SQLite file in a directory that does not exist": "sqlite:///{tmp}/no/such/dir/leadflow.db",
}
# What a command needs besides the mistake to get as far as the database (a command missing here still runs).
NEEDS = {
    "assign": ["--unassigned"],
    "demo": ["--duration", "1", "--no-live"],
    "backlog preview": ["--action", "rescore"],
    "backlog apply": ["--action", "rescore", "--yes"],
}
# Commands that talk to an outside service rather than read a file or the database: their mistake is the service
# not being set up (the place has no LEADFLOW_ settings).
SERVICE_COMMANDS = ("channels telegram set-webhook", "channels viber set-webhook")


def _leaves() -> dict[str, tuple[list[str], Any]]:
    """Every command, with the words that call it: `users create` is a command of the `users` group, and
    `channels telegram set-webhook` one of a group within a group."""
    found: dict[str, tuple[list[str], Any]] = {}

    def walk(words: list[str], command: Any) -> None:
        if hasattr(command, "commands"):  # a group of commands
            for sub, inner in command.commands.items():
                walk([*words, sub], inner)
        else:
            found[" ".join(words)] = (words, command)

    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        walk([name], command)
    return found


COMMANDS = _leaves()


def _is_file(param: Any) -> bool:
    return param.type_descriptor.annotation is Path


def _is_argument(param: Any) -> bool:
    return isinstance(param, TyperArgument)


def _invocations() -> Iterator[tuple[str, str, list[str]]]:
    """(command, mistake, arguments); {tmp} in an argument is the test's directory."""
    for name, (words, command) in sorted(COMMANDS.items()):
        if name in SERVICE_COMMANDS:
            yield name, "the service is not set up", [*words, "https://leads.example.test"]
            continue
        params = command.params
        files = [p for p in params if _is_file(p)]
        takes_database = any(p.name == "database" for p in params)

        def args(
            file: str, mistake: list[str], params: list[Any] = params, name: str = name, words: list[str] = words
        ) -> list[str]:
            out = list(words)
            for p in params:
                if _is_argument(p):
                    out.append(file if _is_file(p) else "1")
                elif p.required:
                    out += [p.opts[0], "anna"]
            return out + mistake + NEEDS.get(name, [])

        if files:
            options = [x for p in files if not _is_argument(p) for x in (p.opts[0], "{tmp}/missing.yaml")]
            yield name, "missing file", args("{tmp}/missing.json", options)
            options = [x for p in files if not _is_argument(p) for x in (p.opts[0], "{tmp}/bad.json")]
            yield name, "bad JSON", args("{tmp}/bad.json", options)
        if takes_database:
            for mistake, url in DATABASE_MISTAKES.items():
                yield name, mistake, args("{tmp}/lead.json", ["--database", url])


INVOCATIONS = list(_invocations())


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty directory with a good rules file, a good lead and a broken one; settings only from here."""
    for key in list(os.environ):
        if key.startswith("LEADFLOW_"):
            monkeypatch.delenv(key)
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "lead.json").write_text(LEAD)
    (tmp_path / "bad.json").write_text(BAD_JSON)
    monkeypatch.setenv("LEADFLOW_RULES", str(tmp_path / "rules.yaml"))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'leadflow.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_every_command_is_checked() -> None:
    checked = {name for name, _, _ in INVOCATIONS}
    assert checked == set(COMMANDS), "a command takes neither a file nor --database: give it mistakes here"
    assert {"init-db", "post", "serve", "worker", "demo", "check-rules"} <= checked


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("command", "mistake", "args"), INVOCATIONS, ids=[f"{c}: {m}" for c, m, _ in INVOCATIONS])
def test_a_mistake_is_answered_in_a_line_or_two(place: Path, command: str, mistake: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, [a.replace("{tmp}", str(place)) for a in args])
    output = result.output
    assert result.exit_code != 0, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert 1 <= len(output.strip().splitlines()) <= 3, output
    assert "error:" in output or "problem(s)" in output, output


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.run([LEADFLOW, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_a_database_that_does_not_exist_is_named_with_its_server(tmp_path: Path, postgres_url: str) -> None:
    missing = make_url(postgres_url).set(database="leadflow_nope_db")
    done = _run("init-db", "-d", missing.render_as_string(hide_password=False), cwd=tmp_path)
    server = f"{missing.host}:{missing.port or 5432}"
    assert done.returncode == 1
    assert done.stderr == (
        f"error: database 'leadflow_nope_db' does not exist on {server}: create it (createdb leadflow_nope_db) "
        "or fix --database (or LEADFLOW_DATABASE_URL)\n"
    )
    assert done.stdout == ""


def test_a_sqlite_file_in_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    done = _run("init-db", "-d", f"sqlite:///{tmp_path}/nonexistent/dir/x.db", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: cannot create the SQLite database {tmp_path}/nonexistent/dir/x.db: the directory "
        f"{tmp_path}/nonexistent/dir does not exist; create it or fix --database (or LEADFLOW_DATABASE_URL)\n"
    )


def test_posting_a_missing_file_says_so(tmp_path: Path) -> None:
    done = _run("post", "missing.json", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: missing.json does not exist: check the path\n"


def test_a_lead_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "lead.json").write_text(BAD_JSON)
    done = _run("post", "lead.json", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: lead.json: not valid JSON: Expecting ") and done.stderr.count("\n") == 1


def test_broken_settings_name_the_variable(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_PORT", "eighty")
    result = CliRunner().invoke(app, ["init-db"])
    assert result.exit_code == 1
    assert "invalid settings: LEADFLOW_PORT: Input should be a valid integer" in " ".join(result.output.split())


def test_a_fault_in_leadflow_itself_keeps_its_traceback() -> None:
    assert explain(KeyError("lead_id")) is None
    assert explain(ZeroDivisionError()) is None
