"""`leadflow serve --workers 4` on PostgreSQL: four serving processes, and caps and round robin stay exact under
concurrent posts. On SQLite, --workers is refused with the reason."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from leadflow.store.tables import leads, managers
from tests.conftest import PG_URL
from tests.support import free_port, key_by_cli

LEADFLOW = str(Path(sys.executable).parent / "leadflow")
RULES = (
    """\
teams:
  - {key: capped, name: Capped, hours: always}
  - {key: open, name: Open, hours: always}
managers:
"""
    + "".join(f"  - {{key: c{i}, name: C{i}, team: capped, capacity: 25}}\n" for i in range(4))
    + "".join(f"  - {{key: o{i}, name: O{i}, team: open, capacity: 10000}}\n" for i in range(4))
    + """\
routing:
  rules:
    - {key: credit, team: capped, when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: open, when: {product: leasing}, strategy: round_robin}
"""
)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A database of its own (the server processes migrate nothing: serve's parent does)."""
    name = f"leadflow_workers_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return env | {"LEADFLOW_DATABASE_URL": url, "LEADFLOW_RULES": str(tmp_path / "rules.yaml")}


async def _post_all(url: str, products: list[str], key: dict[str, str]) -> list[int]:
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False, headers=key) as client:

        async def post(i: int, product: str) -> int:
            async with gate:
                lead = {"name": f"Client {i}", "phone": f"+38067{i:07d}", "product": product}
                r = await client.post("/api/v1/leads", json=lead)
                return r.status_code

        return await asyncio.gather(*(post(i, p) for i, p in enumerate(products)))


def test_four_processes_keep_caps_and_round_robin_exact(tmp_path: Path, fresh_postgres: str) -> None:
    port = free_port()
    key = key_by_cli(_env(tmp_path, fresh_postgres), tmp_path)
    server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port), "--workers", "4", "--no-worker"],
                              cwd=tmp_path, env=_env(tmp_path, fresh_postgres), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 4, children  # four serving processes under the supervisor
        products = ["credit" if i % 2 else "leasing" for i in range(400)]  # 200 of each
        statuses = asyncio.run(_post_all(f"http://127.0.0.1:{port}", products, key))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert Counter(statuses) == {201: 400}
    engine = create_engine(fresh_postgres)
    with engine.connect() as conn:
        owners = Counter(conn.execute(
            select(managers.c.key).select_from(leads.outerjoin(managers, managers.c.id == leads.c.manager_id))
        ).scalars())  # fmt: skip
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    engine.dispose()
    assert {k: owners[k] for k in ("c0", "c1", "c2", "c3")} == {"c0": 25, "c1": 25, "c2": 25, "c3": 25}  # caps
    assert owners[None] == 100  # the rest of the capped team's leads wait in the queue
    assert {k: owners[k] for k in ("o0", "o1", "o2", "o3")} == {"o0": 50, "o1": 50, "o2": 50, "o3": 50}  # spread 0
    assert {k: v for k, v in loads.items()} == {**{f"c{i}": 25 for i in range(4)}, **{f"o{i}": 50 for i in range(4)}}


def test_workers_are_refused_on_sqlite_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run([LEADFLOW, "serve", "--workers", "2"], cwd=tmp_path,
                          env=_env(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "--workers needs PostgreSQL: SQLite has one writer" in " ".join(done.stderr.split())
