"""`leadflow serve` on SQLite killed with SIGKILL in the middle of a burst of Telegram webhook calls: every message
it answered is stored, and Telegram's redelivery of all of them afterwards stores each message exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from leadflow.store.tables import channel_events, leads, messages
from tests.channels.inbound.telegram_standin import update
from tests.support import THREE_MANAGERS, free_port
from tests.test_group_commit_crash import LEADFLOW, _env

UPDATES = 300
AT_ONCE = 32
SECRET = "crash-test-webhook-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


def _channel_env(tmp_path: Path) -> dict[str, str]:
    return _env(tmp_path) | {"LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN": "42:crash-test-token",
                             "LEADFLOW_CHANNELS__TELEGRAM_WEBHOOK_SECRET": SECRET,
                             "LEADFLOW_CHANNELS__TELEGRAM_API_BASE": "http://127.0.0.1:9"}  # fmt: skip


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port), "--no-worker"], cwd=tmp_path,
                              env=_channel_env(tmp_path), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            asyncio.run(asyncio.sleep(0.1))
    server.kill()
    raise RuntimeError("leadflow serve did not start")


def _update(i: int) -> dict[str, Any]:
    return update(i, 7_000_000 + i % 200, 1 + i // 200, f"message {i}")  # 200 clients, some writing twice


async def _burst(url: str, server: subprocess.Popen[bytes], kill_after: int) -> set[int]:
    answered: set[int] = set()
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False, headers=HEADERS) as client:

        async def post(i: int) -> None:
            async with gate:
                if server.poll() is not None:
                    return
                try:
                    r = await client.post("/api/v1/channels/telegram/webhook", json=_update(i))
                except httpx.HTTPError:
                    return  # died with this one in flight: Telegram delivers it again
                if r.status_code == 200:
                    answered.add(i)
                    if len(answered) == kill_after:
                        os.kill(server.pid, signal.SIGKILL)

        await asyncio.gather(*(post(i) for i in range(UPDATES)))
    return answered


def _stored(tmp_path: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{tmp_path / 'crash.db'}")
    with engine.connect() as conn:
        found = dict(conn.execute(select(messages.c.external_id, func.count()).group_by(messages.c.external_id)).all())
        found["(leads)"] = conn.execute(select(func.count()).select_from(leads)).scalar_one()
        found["(events)"] = conn.execute(select(func.count()).select_from(channel_events)).scalar_one()
    engine.dispose()
    return found


def test_an_answered_message_survives_a_sigkill_and_a_redelivery_stores_nothing_twice(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(THREE_MANAGERS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(tmp_path, port)
    try:
        answered = asyncio.run(_burst(url, server, kill_after=100))
    finally:
        server.kill()
        server.wait(timeout=30)
    assert 100 <= len(answered) < UPDATES
    stored = _stored(tmp_path)
    for i in answered:
        u = _update(i)["message"]
        assert stored.get(f"{u['chat']['id']}:{u['message_id']}") == 1, f"update {i} was answered but is not stored"

    server = _serve(tmp_path, port)  # Telegram delivers everything not answered, and some answered ones again
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False, headers=HEADERS) as client:
            for i in range(UPDATES):
                assert client.post("/api/v1/channels/telegram/webhook", json=_update(i)).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = _stored(tmp_path)
    assert stored.pop("(events)") == UPDATES and stored.pop("(leads)") == 200  # one lead per client
    assert len(stored) == UPDATES and set(stored.values()) == {1}  # each message once
