"""`leadflow serve` and `leadflow worker` say at start when escalations and new-lead notices would reach no one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port

LEADFLOW = str(Path(sys.executable).parent / "leadflow")

RULES = """\
teams:
  - {key: sales, name: Sales, telegram_chat_id: "-100500"}
managers:
  - {key: anna, name: Anna, team: sales}
routing:
  rules:
    - {key: all, team: sales}
"""
NO_CHANNEL = "warning: no notification channel is enabled, so escalations and new-lead notices reach no one"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(LEADFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", LEADFLOW_RULES=str(tmp_path / "rules.yaml"))
    return env | extra


def _worker(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEADFLOW, "worker", "--drain"], cwd=tmp_path, env=_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_worker_warns_when_no_channel_is_enabled(tmp_path: Path) -> None:
    done = _worker(tmp_path)
    assert done.returncode == 0, done.stderr
    warning = " ".join(done.stderr.split())
    assert NO_CHANNEL in warning
    assert "LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN" in warning and "LEADFLOW_NOTIFY__SMTP_HOST" in warning
    assert "team sales has an address for telegram but telegram is not enabled" in warning


def test_the_worker_says_nothing_when_the_team_chat_can_be_reached(tmp_path: Path) -> None:
    done = _worker(tmp_path, LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN="123:abc")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr


def test_serve_warns_at_start_and_its_health_says_the_same(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "stderr.txt").open("w") as stderr, (tmp_path / "stdout.txt").open("w") as stdout:
        server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port)], cwd=tmp_path, env=_env(tmp_path),
                                  stdout=stdout, stderr=stderr)  # fmt: skip
        try:
            health = None
            deadline = time.monotonic() + 60
            while health is None and time.monotonic() < deadline and server.poll() is None:
                key = re.search(r"lf_[A-Za-z0-9_-]{43}", (tmp_path / "stdout.txt").read_text())  # the first start's
                try:
                    if key is not None:
                        headers = {"Authorization": f"Bearer {key.group(0)}"}
                        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", headers=headers, timeout=5,
                                           trust_env=False).json()  # fmt: skip
                    else:
                        time.sleep(0.2)
                except httpx.HTTPError:
                    time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert health is not None, (tmp_path / "stderr.txt").read_text()
    assert NO_CHANNEL in " ".join((tmp_path / "stderr.txt").read_text().split())
    assert health["notifications"]["warnings"][0].startswith("no notification channel is enabled")
    assert health["worker"]["in_process"] is True
