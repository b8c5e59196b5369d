"""HTTP intake under load: the real `leadflow serve` over loopback, beside bare FastAPI servers, in one run.

Every server is started here, one at a time, on its own port, and driven by wrk (Debian's package: `apt-get
install -y wrk`) posting distinct leads (a Lua script numbers them per thread) for `--seconds`, at each of
`--connections`:

* bare FastAPI echo, same uvicorn (bench/http_bare.py ``echo``): the ceiling of the framework;
* bare FastAPI + one SQLite INSERT/COMMIT per request (``insert``): the ceiling of one write per request;
* leadflow on SQLite as ``serve`` builds it, under the same uvicorn launcher twice (bench/http_open.py): with
  intake's credential check taken out, and with it (an intake key made by ``leadflow api-keys create``): the
  ratio is what authentication costs;
* ``leadflow serve`` on SQLite, as users run it (the worker in the process, the group writer), with that key;
* with ``--postgres``, ``leadflow serve --workers N`` on PostgreSQL for each N of ``--workers`` (a fresh database
  each time, the worker in the serving process).

The team: 6 managers, round robin, no caps in reach. Figures: requests per second, p50 and p99 latency (wrk's
`--latency`), and answers that were not 2xx. The load average is printed with each row.

    .venv/bin/python -m bench.http [--seconds 10] [--connections 1,8,32] [--postgres] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import DEFAULT_PG_URL, SIX_MANAGERS_RULES, console, machine_info, print_table

LEADFLOW = str(Path(sys.executable).parent / "leadflow")
RULES = SIX_MANAGERS_RULES

LUA = """\
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  n = 0
  offset = tonumber(args[1]) or 0
  headers = {["Content-Type"] = "application/json"}
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
end
function request()
  n = n + 1
  local i = offset + tid * 1000000 + n
  local body = string.format('{"name":"Client %d","phone":"+38067%07d","product":"credit","utm_source":"bench"}',
                             i, i % 10000000)
  return wrk.format("POST", "/api/v1/leads", headers, body)
end
"""


OPEN = "leadflow as serve builds it, SQLite, no credential check"
KEYED = "leadflow as serve builds it, SQLite, intake key"
SERVE = "leadflow serve, SQLite, intake key"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, process: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not start")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(port: int, connections: int, seconds: int, script: Path, offset: int, key: str = "") -> dict[str, Any]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/api/v1/leads", "--", str(offset), key],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rate, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else "", "load": round(os.getloadavg()[0], 2)}  # fmt: skip


class Server:
    """One server process for the length of a `with` block; its stderr goes to `logs`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, logs: Path) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log = logs / (re.sub(r"\W+", "-", name) + ".log")
        self.port = free_port()

    def __enter__(self) -> Server:
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=log)
        wait_up(self.port, self.process)
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return env | extra


def _pg_database(url: str, name: str) -> str:
    """A fresh database on the server of `url`, as a SQLAlchemy URL."""
    import psycopg

    from bench.common import libpq_url

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def intake_key(env: dict[str, str], cwd: Path) -> str:
    """An intake key in the server's database (made with the CLI, as users make theirs), with limits far out of
    reach: the bench measures the check, not the limiter turning requests away."""
    out = subprocess.run(
        [LEADFLOW, "api-keys", "create", "--scope", "intake", "--name", "bench", "--rate", "100000000",
         "--address-rate", "100000000"], env=env, cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"lf_[A-Za-z0-9_-]{43}", out)
    assert found, out
    return found.group(0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", default="1,8,32")
    p.add_argument("--postgres", action="store_true", help="also leadflow on PostgreSQL with --workers")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--pg-url", default=os.environ.get("LEADFLOW_TEST_POSTGRES_URL", DEFAULT_PG_URL))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed: apt-get install -y wrk[/red]")
        return 1
    counts = [int(c) for c in args.connections.split(",") if c]
    rows: list[dict[str, Any]] = []
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="leadflow-http-") as tmp:
        root = Path(tmp)
        script = root / "post.lua"
        script.write_text(LUA)
        (root / "rules.yaml").write_text(RULES)
        uvicorn = [python, "-m", "uvicorn", "--port", "{port}", "--log-level", "warning", "--no-access-log"]
        rules = str(root / "rules.yaml")
        servers = [
            ("bare FastAPI echo", [*uvicorn, "bench.http_bare:echo"], _env()),
            ("bare FastAPI + one SQLite INSERT/COMMIT", [*uvicorn, "bench.http_bare:insert"],
             _env(BENCH_SQLITE=str(root / "insert.db"))),
            (OPEN, [*uvicorn, "--factory", "bench.http_open:app"],
             _env(LEADFLOW_DATABASE_URL=f"sqlite:///{root / 'open.db'}", LEADFLOW_RULES=rules)),
            (KEYED, [*uvicorn, "--factory", "bench.http_open:keyed"],
             _env(LEADFLOW_DATABASE_URL=f"sqlite:///{root / 'keyed.db'}", LEADFLOW_RULES=rules)),
            (SERVE, [LEADFLOW, "serve", "--port", "{port}"],
             _env(LEADFLOW_DATABASE_URL=f"sqlite:///{root / 'leadflow.db'}", LEADFLOW_RULES=rules)),
        ]  # fmt: skip
        if args.postgres:
            for n in [int(w) for w in args.workers.split(",") if w]:
                url = _pg_database(args.pg_url, f"leadflow_http_{n}")
                servers.append((f"leadflow serve, PostgreSQL, {n} process(es)",
                                [LEADFLOW, "serve", "--port", "{port}", "--workers", str(n)],
                                _env(LEADFLOW_DATABASE_URL=url, LEADFLOW_RULES=str(root / "rules.yaml"))))  # fmt: skip
        offset = 0
        repo = Path(__file__).resolve().parents[1]  # where `bench.http_bare` imports from
        for name, command, env in servers:
            key = intake_key(env, root) if name in (KEYED, SERVE) else ""
            with Server(name, command, env | {"PYTHONPATH": str(repo)}, repo, root) as server:
                for c in counts:
                    offset += 10_000_000  # distinct phones in every run: nothing folds into an earlier lead
                    figures = wrk(server.port, c, args.seconds, script, offset, key)
                    rows.append({"server": name, "connections": c, **figures})
                    console.print(f"  {name}, {c} connection(s): {figures['rps']:,.0f} req/s, p50 "
                                  f"{figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, non-2xx "
                                  f"{figures['non_2xx']}; load {figures['load']}")  # fmt: skip
    echo = {r["connections"]: r["rps"] for r in rows if r["server"] == "bare FastAPI echo"}
    print_table(
        f"HTTP intake over loopback, wrk, {args.seconds} s per row, distinct leads",
        ["server", "connections", "req/s", "of echo", "p50 ms", "p99 ms", "non-2xx", "load"],
        [[r["server"], str(r["connections"]), f"{r['rps']:,.0f}", f"{r['rps'] / echo[r['connections']]:.1%}",
          f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["non_2xx"]), str(r["load"])] for r in rows],
    )  # fmt: skip
    keyed = {r["connections"]: r["rps"] for r in rows if r["server"] == KEYED}
    open_ = {r["connections"]: r["rps"] for r in rows if r["server"] == OPEN}
    for c in counts:
        console.print(f"  authenticated intake, {c} connection(s): {keyed[c] / open_[c]:.1%} of the same server "
                      "without the credential check")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
