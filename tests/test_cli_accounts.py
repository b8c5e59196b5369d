"""`leadflow users ...`, `leadflow api-keys ...` and the first start of `leadflow serve`, as the real console
script in a subprocess."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support import free_port
from tests.test_cli import LEADFLOW, Cli, one_line

KEY = re.compile(r"lf_[A-Za-z0-9_-]{43}")
PASSWORD = re.compile(r"password \(shown once\): (\S+)")


def test_users_are_created_listed_disabled_and_reset_without_a_password_ever_stored(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    made = cli("users", "create", "halyna", "--role", "head", "--team", "sales", "--name", "Halyna H.")
    assert made.returncode == 0, made.stderr
    password = PASSWORD.search(made.stdout)
    assert password, made.stdout
    stored = cli.query("select password_hash from users where username = 'halyna'")[0][0]
    assert stored.startswith("$argon2id$") and password.group(1) not in stored
    listed = cli("users", "list")
    assert "halyna" in listed.stdout and "head of sales" in one_line(listed.stdout)
    assert password.group(1) not in listed.stdout
    refused = cli("users", "create", "anna", "--role", "manager")
    assert refused.returncode == 1 and "names the manager" in one_line(refused.stderr)
    assert cli("users", "create", "anna", "--role", "manager", "--manager", "anna").returncode == 0
    again = cli("users", "create", "halyna", "--role", "admin")
    assert again.returncode == 1 and "already a user 'halyna'" in again.stderr
    reset = cli("users", "reset-password", "halyna")
    assert reset.returncode == 0 and PASSWORD.search(reset.stdout).group(1) != password.group(1)  # type: ignore[union-attr]
    assert cli("users", "disable", "halyna").returncode == 0
    assert cli.query("select disabled_at is not null from users where username = 'halyna'") == [(1,)]
    assert "no" in cli("users", "list").stdout


def test_an_api_key_is_printed_once_and_stored_as_a_keyed_hash(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    made = cli("api-keys", "create", "--scope", "intake", "--name", "site form", "--origin", "https://shop.example")
    assert made.returncode == 0, made.stderr
    key = KEY.search(made.stdout)
    assert key, made.stdout
    rows = cli.query("select name, scope, digest, prefix, origins, rate_per_minute, address_rate_per_minute "
                     "from api_keys")  # fmt: skip
    assert [(r[0], r[1], r[4], r[5], r[6]) for r in rows] == [("site form", "intake", '["https://shop.example"]',
                                                               600, 20)]  # fmt: skip
    assert key.group(0) not in rows[0][2] and len(rows[0][2]) == 64 and key.group(0).startswith(rows[0][3])
    listed = cli("api-keys", "list")
    assert "site form" in listed.stdout and key.group(0) not in listed.stdout
    bad = cli("api-keys", "create", "--scope", "everything", "--name", "x")
    assert bad.returncode == 1 and "intake, read, write, admin" in bad.stderr
    assert cli("api-keys", "revoke", "site form").returncode == 0
    assert cli.query("select revoked_at is not null from api_keys") == [(1,)]


def test_serving_beyond_loopback_without_any_account_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    refused = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 1
    assert "no account or API key exists yet" in one_line(refused.stderr)


def test_the_first_start_makes_accounts_and_a_key_shown_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    answers: list[int] = []

    def use_the_key(url: str, printed: str) -> None:
        key = KEY.search(printed)
        assert key, printed
        answers.append(httpx.get(f"{url}/api/v1/leads", timeout=10, trust_env=False).status_code)
        authed = httpx.get(f"{url}/api/v1/leads", headers={"Authorization": f"Bearer {key.group(0)}"}, timeout=10,
                           trust_env=False)  # fmt: skip
        answers.append(authed.status_code)

    first = _serve_until_up(cli, use_the_key)
    assert answers == [401, 200], first
    table = one_line(first)
    assert all(name in table for name in ("admin", "anna", "bohdan", "chrystia")), first
    second = _serve_until_up(cli)
    assert not KEY.search(second) and "First start" not in second
    assert cli.count("users") == 4  # the admin and the three managers of the rules


def _serve_until_up(cli: Cli, then: Callable[[str, str], None] | None = None) -> str:
    """Start `leadflow serve`, wait until it answers, run `then(url, printed)`, stop it; what it printed."""
    port = free_port()
    out = cli.dir / f"serve-{port}.txt"
    with out.open("w") as stdout:
        server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port)], cwd=cli.dir, env=cli.env, stdout=stdout,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            if then is not None:
                stdout.flush()
                then(f"http://127.0.0.1:{port}", out.read_text())
        finally:
            server.terminate()
            server.wait(timeout=30)
    return out.read_text()
