"""The bare servers bench/http.py measures leadflow beside: the same uvicorn, FastAPI, and nothing of leadflow's.

* ``echo``: an async endpoint that parses the posted JSON and answers it back;
* ``insert``: the same, plus one INSERT and COMMIT per request into a SQLite file in WAL mode with leadflow's
  settings (synchronous as LEADFLOW_SQLITE_SYNCHRONOUS, default NORMAL), on the thread pool as a plain ``def``.

    .venv/bin/python -m uvicorn bench.http_bare:echo --port 8101
    BENCH_SQLITE=/tmp/x.db .venv/bin/python -m uvicorn bench.http_bare:insert --port 8102
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

echo = FastAPI()
insert = FastAPI()


@echo.post("/api/v1/leads")
async def echo_lead(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({"id": 1, "created": True, "lead": body}), status_code=201,
                    media_type="application/json")  # fmt: skip


_local = threading.local()
_lock = threading.Lock()


def _conn() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        path = os.environ.get("BENCH_SQLITE", "bench-insert.db")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={os.environ.get('LEADFLOW_SQLITE_SYNCHRONOUS', 'NORMAL')}")
        conn.execute("PRAGMA busy_timeout=30000")
        with _lock:
            conn.execute("CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        _local.conn = conn
    return conn


@insert.post("/api/v1/leads")
def insert_lead(body: dict[str, Any]) -> Response:
    conn = _conn()
    conn.execute("BEGIN IMMEDIATE")
    lead_id = conn.execute("INSERT INTO leads (body) VALUES (?) RETURNING id", (orjson.dumps(body),)).fetchone()[0]
    conn.execute("COMMIT")
    return Response(orjson.dumps({"id": lead_id, "created": True}), status_code=201, media_type="application/json")
