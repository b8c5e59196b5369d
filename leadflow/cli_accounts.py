"""`leadflow users ...` and `leadflow api-keys ...`: accounts for people, keys for machines.

A password or key made here is printed once and never stored in the clear; the CLI acts as the host's operator
(recorded as `system:cli`).
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from leadflow.cli import CLI, DbOption, RulesOption, _Commands, _settings, console

users_app = _Commands(
    help="People who sign in: create, list, disable, reset a password, add or remove a role.", no_args_is_help=True
)
keys_app = _Commands(help="API keys for machines: create (shown once), list, revoke.", no_args_is_help=True)


def _engine(rules: RulesOption, database: DbOption) -> Engine:
    from leadflow.bootstrap import open_app

    return open_app(_settings(rules, database)).engine


def _password(ask: bool) -> tuple[str, bool]:
    """A password typed twice at the prompt, or (not asked) a random one to print."""
    from leadflow.services.accounts import new_password

    if not ask:
        return new_password(), True
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise typer.BadParameter("the two passwords differ")
    return first, False


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Argument(help="The sign-in name: letters, digits, '.', '-', '_'.")],
    role: Annotated[str, typer.Option(help="admin, head, desk or manager.")],
    team: Annotated[list[str] | None, typer.Option(help="A team the role is for (repeat); none: every team.")] = None,
    manager: Annotated[str | None, typer.Option(help="A manager's account: the manager's key.")] = None,
    name: Annotated[str | None, typer.Option(help="The name shown.")] = None,
    prompt: Annotated[bool, typer.Option("--prompt", help="Type the password instead of a random one.")] = False,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Create a user; without --prompt a random password is printed, once."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    password, show = _password(prompt)
    with _engine(rules, database).begin() as conn:
        user = accounts.create_user(conn, username, password, utcnow(), role=role, teams_=team or [], name=name,
                                    manager=manager, actor=CLI)  # fmt: skip
    console.print(f"[green]created[/] {user['username']} ({_roles(user)})")
    if show:
        console.print(f"password (shown once): [bold]{password}[/]")


def _roles(user: dict[str, object]) -> str:
    roles = user["roles"]
    assert isinstance(roles, list)
    return ", ".join(f"{r['role']} of {r['team']}" if r["team"] else f"{r['role']}" for r in roles)


@users_app.command("list")
def list_users(rules: RulesOption = None, database: DbOption = None) -> None:
    """Users with their roles, manager, last sign-in and whether they are active."""
    from leadflow.services import accounts

    with _engine(rules, database).connect() as conn:
        found = accounts.list_users(conn)
    table = Table("user", "name", "roles", "manager", "last sign-in", "active")
    for u in found:
        last = u["last_login_at"].isoformat(timespec="minutes") if u["last_login_at"] else "never"
        table.add_row(u["username"], u["name"], _roles(u), u["manager"] or "", last, "yes" if u["active"] else "no")
    console.print(table)


@users_app.command("disable")
def disable_user(username: str, rules: RulesOption = None, database: DbOption = None) -> None:
    """Refuse the user's sign-ins and end their sessions (within a second everywhere); their history stays."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    with _engine(rules, database).begin() as conn:
        accounts.disable_user(conn, username, utcnow(), CLI)
    console.print(f"[green]disabled[/] {username}")


@users_app.command("reset-password")
def reset_password(
    username: str,
    prompt: Annotated[bool, typer.Option("--prompt", help="Type the password instead of a random one.")] = False,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """A new password (random and printed once, or typed); the user's sessions end and a sign-in lock lifts."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    password, show = _password(prompt)
    with _engine(rules, database).begin() as conn:
        accounts.set_password(conn, username, password, utcnow(), CLI)
    console.print(f"[green]password reset[/] for {username}")
    if show:
        console.print(f"password (shown once): [bold]{password}[/]")


RoleTeam = Annotated[str | None, typer.Option(help="The team the role is for; none: every team.")]


@users_app.command("add-role")
def add_role(
    username: str,
    role: Annotated[str, typer.Option(help="admin, head, desk or manager.")],
    team: RoleTeam = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Give a user one more role, for one team or every team; their sessions have it at their next request."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    with _engine(rules, database).begin() as conn:
        user = accounts.add_role(conn, username, role, team, utcnow(), CLI)
    console.print(f"[green]role added[/] {user['username']} ({_roles(user)})")


@users_app.command("remove-role")
def remove_role(
    username: str,
    role: Annotated[str, typer.Option(help="admin, head, desk or manager.")],
    team: RoleTeam = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Take a role from a user (one team's, or the one for every team); a user keeps at least one."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    with _engine(rules, database).begin() as conn:
        user = accounts.remove_role(conn, username, role, team, utcnow(), CLI)
    console.print(f"[green]role removed[/] {user['username']} ({_roles(user)})")


@keys_app.command("create")
def create_key(
    scope: Annotated[str, typer.Option(help="intake (post leads only), read, write or admin.")],
    name: Annotated[str, typer.Option(help='What uses it, e.g. "site form".')],
    origin: Annotated[
        list[str] | None, typer.Option(help="Intake keys in a page: a site allowed to post (repeat).")
    ] = None,
    rate: Annotated[int | None, typer.Option(help="Intake keys: leads a minute for the key (default 600).")] = None,
    address_rate: Annotated[
        int | None, typer.Option(help="Intake keys: leads a minute from one client address (default 20).")
    ] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Create a key and print it, once: it is stored only as a keyed hash."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    if scope == "intake":
        rate = 600 if rate is None else rate
        address_rate = 20 if address_rate is None else address_rate
    with _engine(rules, database).begin() as conn:
        key, row = accounts.create_key(conn, name, scope, utcnow(), actor=CLI, origins=origin or None,
                                       rate_per_minute=rate or None, address_rate_per_minute=address_rate or None)  # fmt: skip
    console.print(f"[green]created[/] key '{row['name']}' (scope {row['scope']})")
    console.print(f"key (shown once): [bold]{key}[/]")


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Keys with scope, when made, last used, and revoked."""
    from leadflow.services import accounts

    with _engine(rules, database).connect() as conn:
        found = accounts.list_keys(conn)
    if as_json:
        console.print_json(json.dumps(found, default=str))
        return
    table = Table("name", "scope", "starts with", "created", "last used", "revoked")
    for k in found:
        stamp = {
            f: k[f].isoformat(timespec="minutes") if k[f] else "" for f in ("created_at", "last_used_at", "revoked_at")
        }
        table.add_row(k["name"], k["scope"], k["prefix"], stamp["created_at"], stamp["last_used_at"] or "never",
                      stamp["revoked_at"])  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def revoke_key(name: str, rules: RulesOption = None, database: DbOption = None) -> None:
    """Revoke a key: refused everywhere within a second."""
    from leadflow.services import accounts
    from leadflow.services.context import utcnow

    with _engine(rules, database).begin() as conn:
        accounts.revoke_key(conn, name, utcnow(), CLI)
    console.print(f"[green]revoked[/] key '{name}'")
