"""`leadflow users add-role` and `remove-role`, as the real console script in a subprocess."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import Cli, one_line


def test_a_role_is_added_and_removed_and_both_are_audited(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("users", "create", "anna", "--role", "manager", "--manager", "anna").returncode == 0
    added = cli("users", "add-role", "anna", "--role", "head", "--team", "sales")
    assert added.returncode == 0, added.stderr
    assert "role added" in added.stdout and "head of sales" in one_line(added.stdout)
    assert cli.query("select role, team_id is not null from user_roles order by role") == [("head", 1), ("manager", 0)]
    assert "head of sales" in one_line(cli("users", "list").stdout)

    twice = cli("users", "add-role", "anna", "--role", "head", "--team", "sales")
    assert twice.returncode == 1 and "already has the role head of team 'sales'" in one_line(twice.stderr)
    nowhere = cli("users", "add-role", "anna", "--role", "desk", "--team", "mars")
    assert nowhere.returncode == 1 and "there is no team 'mars'" in one_line(nowhere.stderr)

    removed = cli("users", "remove-role", "anna", "--role", "head", "--team", "sales")
    assert removed.returncode == 0, removed.stderr
    assert "role removed" in removed.stdout and "head" not in removed.stdout.split("(")[-1]
    last = cli("users", "remove-role", "anna", "--role", "manager")
    assert last.returncode == 1 and "only role" in one_line(last.stderr)
    assert cli.query("select type, actor from events where type like 'user.role_%' order by id") == [
        ("user.role_added", "system:cli"), ("user.role_removed", "system:cli")]  # fmt: skip
