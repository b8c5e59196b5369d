"""`leadflow serve` on SQLite killed with SIGKILL in the middle of a burst of concurrent posts: every lead it
acknowledged is in the database, and every other one is either absent or, posted again, answered once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select

from leadflow.store.tables import leads
from tests.support import THREE_MANAGERS, free_port, key_by_cli

LEADFLOW = str(Path(sys.executable).parent / "leadflow")
POSTS = 400
AT_ONCE = 32


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(LEADFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'crash.db'}", LEADFLOW_RULES=str(tmp_path / "rules.yaml"))
    return env


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = _env(tmp_path)
    server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port), "--no-worker"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("leadflow serve did not start")


def _lead(i: int) -> dict[str, str]:
    return {"name": f"Client {i}", "phone": f"+38067{i:07d}", "product": "credit"}


async def _burst(url: str, server: subprocess.Popen[bytes], kill_after: int, key: dict[str, str]) -> dict[int, int]:
    """Post POSTS leads, AT_ONCE at a time; SIGKILL the server once `kill_after` were acknowledged."""
    acknowledged: dict[int, int] = {}
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False, headers=key) as client:

        async def post(i: int) -> None:
            async with gate:
                if server.poll() is not None:
                    return
                try:
                    r = await client.post("/api/v1/leads", json=_lead(i), headers={"Idempotency-Key": f"burst-{i}"})
                except httpx.HTTPError:
                    return  # the server died with this one in flight: not acknowledged
                if r.status_code in (200, 201):
                    acknowledged[i] = r.json()["id"]
                    if len(acknowledged) == kill_after:
                        os.kill(server.pid, signal.SIGKILL)

        await asyncio.gather(*(post(i) for i in range(POSTS)))
    return acknowledged


def test_acknowledged_means_committed_through_a_sigkill(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(THREE_MANAGERS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = key_by_cli(_env(tmp_path), tmp_path)
    server = _serve(tmp_path, port)
    try:
        acknowledged = asyncio.run(_burst(url, server, kill_after=150, key=key))
    finally:
        server.kill()
        server.wait(timeout=30)
    assert 150 <= len(acknowledged) < POSTS  # it died in the middle

    engine = create_engine(f"sqlite:///{tmp_path / 'crash.db'}")
    with engine.connect() as conn:
        stored = dict(conn.execute(select(leads.c.idempotency_key, leads.c.id)).all())
    engine.dispose()
    for i, lead_id in acknowledged.items():
        assert stored.get(f"burst-{i}") == lead_id, f"lead {i} was acknowledged as {lead_id} but is not stored"

    # Posted again after the restart, every lead is answered once: the first answer for those that were committed
    # (acknowledged or not), a new lead for those that were lost with the process.
    server = _serve(tmp_path, port)
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False, headers=key) as client:
            for i in range(POSTS):
                r = client.post("/api/v1/leads", json=_lead(i), headers={"Idempotency-Key": f"burst-{i}"})
                assert r.status_code == (200 if f"burst-{i}" in stored else 201), r.text
                if i in acknowledged:
                    assert r.json()["id"] == acknowledged[i]
    finally:
        server.terminate()
        server.wait(timeout=30)
    engine = create_engine(f"sqlite:///{tmp_path / 'crash.db'}")
    with engine.connect() as conn:
        keys = conn.execute(select(leads.c.idempotency_key)).scalars().all()
    engine.dispose()
    assert sorted(keys) == sorted(f"burst-{i}" for i in range(POSTS))  # each once
