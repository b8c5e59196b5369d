"""What authenticating a request costs, in process: the key check intake runs on every post, beside the whole
intake of one lead measured in the same run on the same database.

* remembered key (the path nearly every request takes: a keyed hash and a look-up in the per-process memory of the
  last second);
* key looked up in the database (the first request of each second per key and process);
* a session token looked up in the database (a person's browser);
* the intake of one lead, as serve runs it (group writer), for scale.

    .venv/bin/python -m bench.auth [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from starlette.requests import Request

from bench.common import console, machine_info, print_table
from leadflow.api.app import create_api
from leadflow.api.auth import authenticate
from leadflow.bootstrap import assemble, read_rules
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Action
from leadflow.services import accounts
from leadflow.services.context import utcnow
from leadflow.services.intake import take_lead
from leadflow.settings import Settings
from leadflow.store.db import make_engine, migrate
from leadflow.store.team_state import apply_rules_people

RULES = Path(__file__).resolve().parents[1] / "leadflow" / "examples" / "rules.yaml"


def _request(api: object, token: str) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/api/v1/leads", "query_string": b"", "app": api,
             "headers": [(b"authorization", f"Bearer {token}".encode())], "client": ("127.0.0.1", 5000)}  # fmt: skip
    return Request(scope)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--requests", type=int, default=20000)
    args = p.parse_args(argv)
    n = args.requests
    with tempfile.TemporaryDirectory(prefix="leadflow-auth-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'auth.db'}"
        migrate(url)
        engine = make_engine(url)
        rules = read_rules(RULES)
        with engine.begin() as conn:
            apply_rules_people(conn, rules, utcnow())
            # The limits a site form's key gets from the CLI by default, far out of reach of this loop's count.
            key, _ = accounts.create_key(conn, "bench", "intake", utcnow(), actor=SYSTEM, rate_per_minute=10**9,
                                         address_rate_per_minute=10**9)  # fmt: skip
            accounts.create_user(conn, "bench-user", "a long password", utcnow(), role="admin", actor=SYSTEM)
            session = accounts.sign_in(conn, accounts.key_secret(conn), "bench-user", "a long password", utcnow(),
                                       address=None, user_agent=None, throttle=accounts.Throttle(),
                                       times=accounts.SessionTimes())  # fmt: skip
        settings = Settings(database_url=url)
        app = assemble(engine, rules, settings, serving=True)
        api = create_api(app, settings)
        auth = api.state.auth

        async def checks(token: str, count: int, forget: bool) -> float:
            started = time.perf_counter()
            for _ in range(count):
                if forget:
                    auth.forget()
                await authenticate(_request(api, token), Action.LEAD_CREATE)
            return (time.perf_counter() - started) / count * 1e6

        remembered = asyncio.run(checks(key, n, forget=False))
        looked_up = asyncio.run(checks(key, max(n // 10, 100), forget=True))
        person = asyncio.run(checks(session.token, max(n // 10, 100), forget=True))
        leads = max(n // 20, 200)
        started = time.perf_counter()
        for i in range(leads):
            take_lead(app, LeadIn(name=f"Client {i}", phone=f"+38067{i:07d}", product="credit"), utcnow())
        per_lead = (time.perf_counter() - started) / leads * 1e6
        if app.writer is not None:
            app.writer.close()
        engine.dispose()
    print_table(
        f"Authenticating a request, in process, SQLite ({machine_info()['nproc']} cores, load {machine_info()['loadavg_at_start'][0]})",
        ["what", "µs per request", "of one lead's intake"],
        [["remembered intake key (nearly every request)", f"{remembered:.1f}", f"{remembered / per_lead:.1%}"],
         ["intake key looked up in the database", f"{looked_up:.1f}", f"{looked_up / per_lead:.1%}"],
         ["session token looked up in the database", f"{person:.1f}", f"{person / per_lead:.1%}"],
         ["intake of one lead (baseline, same run)", f"{per_lead:.1f}", "100%"]],
    )  # fmt: skip
    console.print(f"  {n:,} remembered checks, {max(n // 10, 100):,} looked up, {leads:,} leads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
