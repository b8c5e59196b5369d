"""SLA (escalation) benchmark: a burst of passed deadlines and a steady trickle, escalated by real worker processes.

    .venv/bin/python -m bench.sla [--database sqlite|postgresql|all] [--open 100000] [--burst 10000]
                                  [--trickle-seconds 30] [--trickle-rate 30] [--workers 1,2] [--json PATH]

Per configuration (SQLite with one worker; PostgreSQL with each count in --workers), on a fresh migrated database:

* setup, not measured: one team of ten managers and a head, one round-robin rule, a 10-minute wall-clock first-contact
  deadline. One lead per manager goes through the real ``take_lead``; its rows (every table with a lead_id) are the
  templates of the bulk fill, and three more real leads are compared column by column with bulk copies made for the
  same clients. Then --open open leads are copied in bulk (executemany / COPY), deadlines spread uniformly over the
  hour from the start of the fill (about 28 fall due each second), managers.open_leads kept consistent;
* the ``leadflow worker`` processes start (not --drain: they sleep until the next deadline) and catch up (the deadlines
  passed during the fill, and with notifications their messages);
* trickle: leads whose deadlines fall at --trickle-rate per second, each committed 1.5 s before it is due, for
  --trickle-seconds; measured: late_ms p50/p90/p99/max (the product's own figure: escalation start - deadline);
* burst: --burst leads whose deadline is the same instant, committed in one transaction; measured: seconds from that
  commit until every one is escalated (polling the events), escalations/s, late_ms, how long an intake would wait
  meanwhile for the first lock it takes (probed every 0.2 s);
* with notifications on (default), managers and the team chat have Telegram chats and a fake Bot API on loopback
  answers the workers' sends, so the outbox is written and drained as in production; the time from the deadline to
  the new owner's message ("told") is reported too;
* baseline (workers stopped, first configuration of each database): the same writes per escalation with the bare
  driver (stdlib ``sqlite3`` / ``psycopg``), one transaction per escalation and 200 per transaction, and leadflow's
  ``escalate_due`` called in-process with its statements counted and timed (and under cProfile with --profile).

Each wait has a time-out (--burst-timeout, --trickle-timeout, --catch-up-timeout, --notify-timeout, --phase-seconds);
workers are stopped with SIGTERM (then killed), PostgreSQL databases dropped, temporary files removed.
What the figures mean and the latest ones: docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Json
from rich.markup import escape
from sqlalchemy import Engine, event

from bench.common import (
    DEFAULT_PG_URL,
    PostgresScratch,
    console,
    libpq_url,
    machine_info,
    median,
    percentile,
    postgres_scratch,
    print_table,
    sqlite_checkpoint,
    sqlite_connect,
)
from leadflow.channels.config import NotifyConfig
from leadflow.core.lead import LeadIn
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due
from leadflow.store.db import make_engine, migrate
from leadflow.store.team_state import apply_rules_people

# A raw DB-API connection: sqlite3.Connection or psycopg.Connection (their cursors share what is used here).
RawConn = Any

TARGET_TRICKLE_P99_MS = 1000.0
TARGET_BURST_SECONDS = 20.0
FIRST_CONTACT = timedelta(minutes=10)
SPREAD = timedelta(hours=1)
RULE = "all"
TEAM = "sales"
TEAM_CHAT = "-1001000"
CAPACITY = 100_000
BATCH = 200  # escalations per transaction of the in-process and bare-driver baselines (`leadflow worker` claims 100)
TRICKLE_AHEAD = 1.5  # seconds between a trickle lead's commit and its deadline
TICK = 0.1
POLL = 0.05
BOT_TOKEN = "123456:bench-token"
LEADFLOW = shutil.which("leadflow") or str(Path(sys.executable).parent / "leadflow")

MANAGERS = (
    ("m01", "Олена Коваль"), ("m02", "Тарас Мельник"), ("m03", "Андрій Бондар"), ("m04", "Ірина Шевченко"),
    ("m05", "Богдан Ткаченко"), ("m06", "Христина Олійник"), ("m07", "Максим Кравченко"),
    ("m08", "Наталія Лисенко"), ("m09", "Роман Савченко"), ("m10", "Оксана Марченко"),
)  # fmt: skip
HEAD = ("head", "Галина Романенко")
CLIENTS = (
    "Олександр Шевчук", "Марія Поліщук", "Іван Бойко", "Юлія Ткачук", "Дмитро Руденко", "Анна Петренко",
    "Сергій Кузьменко", "Катерина Павленко", "Василь Мороз", "Софія Гончаренко",
)  # fmt: skip


def rules_text(notify: bool) -> str:
    def chat(i: int) -> str:
        return f", telegram_chat_id: '{100_000 + i}'" if notify else ""

    team_chat = f', telegram_chat_id: "{TEAM_CHAT}"' if notify else ""
    people = [*MANAGERS, HEAD]
    lines = [f"  - {{key: {key}, name: {name}, team: {TEAM}, capacity: {CAPACITY}{chat(i)}}}"
             for i, (key, name) in enumerate(people)]  # fmt: skip
    keys = ", ".join(key for key, _ in MANAGERS)
    return f"""
version: 1
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {{key: {TEAM}, name: Sales, timezone: Europe/Kyiv, head: {HEAD[0]}, hours: always{team_chat}}}
managers:
{chr(10).join(lines)}
routing:
  rules:
    - {{key: {RULE}, team: {TEAM}, managers: [{keys}], strategy: round_robin}}
sla:
  default: {{first_contact: 10m, count: wall_clock}}
"""


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def dist(values_ms: Sequence[float]) -> dict[str, float]:
    if not values_ms:
        return {"n": 0}
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 50), 1),
        "p90_ms": round(percentile(values_ms, 90), 1),
        "p99_ms": round(percentile(values_ms, 99), 1),
        "max_ms": round(max(values_ms), 1),
    }


# --- the two databases ----------------------------------------------------------------------------------------------


class Backend:
    """One database kind: fresh migrated databases, raw connections, bulk writes, the intake lock probe."""

    kind = ""
    ph = "?"
    claim_lock = ""

    def create(self, label: str) -> str:
        raise NotImplementedError

    def drop(self, url: str) -> None:
        raise NotImplementedError

    def connect(self, url: str) -> RawConn:
        raise NotImplementedError

    @contextmanager
    def transaction(self, conn: RawConn) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def ts(self, value: datetime) -> Any:
        return value

    def js(self, value: Any) -> Any:
        raise NotImplementedError

    def bulk(self, cur: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def after_insert(self, cur: Any) -> None:
        """Keep the leads id sequence ahead of the ids written explicitly."""

    def lock_team(self, cur: Any) -> None:
        """take_lead's first lock (SQLite: BEGIN IMMEDIATE already serialises writers)."""

    def settle(self, url: str, conn: RawConn) -> None:
        """After the bulk fill: what a database that has been running for a while would have done by now."""

    def intake_wait(self, conn: RawConn) -> float:
        """Seconds an intake transaction would wait right now for the lock it takes first."""
        raise NotImplementedError

    def settings(self, conn: RawConn) -> dict[str, Any]:
        return {}

    def value(self, raw: Any) -> Any:
        """A JSON column as read back: SQLite returns text."""
        return json.loads(raw) if isinstance(raw, str) else raw

    def child_tables(self, conn: RawConn) -> list[str]:
        """Every table with a lead_id column (and no other table's rows), in name order."""
        raise NotImplementedError

    def convert(self, table: str, row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
        out = []
        for c in columns:
            v = row[c]
            if isinstance(v, datetime):
                v = self.ts(v)
            elif isinstance(v, dict | list):
                v = self.js(v)
            out.append(v)
        return tuple(out)


class SqliteBackend(Backend):
    kind = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, url: str) -> Path:
        return Path(url.removeprefix("sqlite:///"))

    def create(self, label: str) -> str:
        url = f"sqlite:///{self.root / f'{label}.db'}"
        migrate(url)
        return url

    def drop(self, url: str) -> None:
        path = self.path(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def connect(self, url: str) -> RawConn:
        return sqlite_connect(self.path(url), "NORMAL")  # leadflow's engine: WAL, synchronous=NORMAL

    @contextmanager
    def transaction(self, conn: RawConn) -> Iterator[Any]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def ts(self, value: datetime) -> str:
        # What SQLAlchemy's SQLite DATETIME stores (naive UTC); the shape check compares the text.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def js(self, value: Any) -> str:
        return json.dumps(value)

    def bulk(self, cur: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(columns)
        cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)

    def settle(self, url: str, conn: RawConn) -> None:
        sqlite_checkpoint(self.path(url))

    def child_tables(self, conn: RawConn) -> list[str]:
        rows = conn.execute("SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c "
                            "WHERE m.type = 'table' AND c.name = 'lead_id' ORDER BY m.name").fetchall()  # fmt: skip
        return [r[0] for r in rows]

    def intake_wait(self, conn: RawConn) -> float:
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")  # what every leadflow writer begins with
        waited = time.perf_counter() - started
        conn.execute("ROLLBACK")
        return waited

    def settings(self, conn: RawConn) -> dict[str, Any]:
        return {"journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0]}  # fmt: skip


class PostgresBackend(Backend):
    kind = "postgresql"
    ph = "%s"
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, scratch: PostgresScratch) -> None:
        self.scratch = scratch
        self.names: dict[str, str] = {}
        self.json_columns: set[tuple[str, str]] = set()

    def create(self, label: str) -> str:
        name, url = self.scratch.create(label)
        self.names[url] = name
        migrate(url)
        return url

    def drop(self, url: str) -> None:
        self.scratch.drop(self.names.pop(url))

    def connect(self, url: str) -> RawConn:
        return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5)

    @contextmanager
    def transaction(self, conn: RawConn) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def js(self, value: Any) -> Json:
        return Json(value)

    def bulk(self, cur: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def child_tables(self, conn: RawConn) -> list[str]:
        where = "table_schema = current_schema()"
        self.json_columns = {(t, c) for t, c in conn.execute(
            f"SELECT table_name, column_name FROM information_schema.columns WHERE {where} "
            "AND data_type IN ('json', 'jsonb')").fetchall()}  # fmt: skip
        rows = conn.execute(f"SELECT table_name FROM information_schema.columns WHERE {where} "
                            "AND column_name = 'lead_id' ORDER BY table_name").fetchall()  # fmt: skip
        return [r[0] for r in rows]

    def convert(self, table: str, row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
        # psycopg reads json as Python values; written back they need the Json wrapper (a JSON string too)
        return tuple(Json(row[c]) if row[c] is not None and (table, c) in self.json_columns else row[c]
                     for c in columns)  # fmt: skip

    def lock_team(self, cur: Any) -> None:
        cur.execute(f"SELECT id FROM teams WHERE key = '{TEAM}' FOR UPDATE")

    def after_insert(self, cur: Any) -> None:
        cur.execute("SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))")

    def settle(self, url: str, conn: RawConn) -> None:
        conn.execute("VACUUM ANALYZE")  # autovacuum would have; the first measured minute should not pay for it

    def intake_wait(self, conn: RawConn) -> float:
        started = time.perf_counter()
        with conn.transaction():
            # take_lead's first lock (lock_teams): the team row, also held by an escalation batch until it commits
            conn.execute(f"SELECT id FROM teams WHERE key = '{TEAM}' FOR UPDATE")
            waited = time.perf_counter() - started
        return waited

    def settings(self, conn: RawConn) -> dict[str, Any]:
        out = {}
        for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            out[name] = conn.execute(f"SHOW {name}").fetchone()[0]
        return out


# --- rows exactly like take_lead writes them -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    id: int
    name: str
    chat: str | None


@dataclass(frozen=True, slots=True)
class Bundle:
    """Everything take_lead commits for one lead (its outbox row aside), as driver values: leads row and children."""

    lead: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]  # table → rows (without their own id), every table with a lead_id


@dataclass(frozen=True, slots=True)
class Template:
    """One lead as the real take_lead wrote it, read back with the bare driver."""

    lead: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def read_template(db: Backend, conn: RawConn, lead_id: int, child_tables: Sequence[str]) -> Template:
    p = db.ph
    lead = fetch(conn, f"SELECT * FROM leads WHERE id = {p}", (lead_id,))[0]
    children = {}
    for table in child_tables:
        rows = fetch(conn, f"SELECT * FROM {table} WHERE lead_id = {p} ORDER BY 1", (lead_id,))
        if rows:
            children[table] = [_without(r, "id") for r in rows]
    return Template(lead, children)


class Cloner:
    """Copies of real take_lead leads (one template per manager, taken in turns), with a new id, client, intake time
    and deadline: every timestamp equal to the template's intake time becomes the copy's, likewise the deadline."""

    def __init__(self, db: Backend, templates: dict[str, Template], people: Sequence[Person], next_id: int) -> None:
        self.db = db
        self.templates = templates
        self.people = [p for p in people if p.key in templates]
        self.by_key = {p.key: p for p in people}
        self.next_id = next_id
        self.turn = 0

    def make(
        self, created: datetime, due: datetime, *, person: Person | None = None, phone: str | None = None,
        name: str | None = None,
    ) -> Bundle:  # fmt: skip
        db = self.db
        lead_id = self.next_id
        self.next_id += 1
        if person is None:
            person = self.people[self.turn % len(self.people)]
            self.turn += 1
        tpl = self.templates[person.key]
        phone = phone or f"+38067{lead_id % 10_000_000:07d}"
        name = name or CLIENTS[lead_id % len(CLIENTS)]
        old_created, old_due = tpl.lead["created_at"], tpl.lead["sla_due_at"]
        new_created, new_due = db.ts(created), db.ts(due)

        def swap(row: dict[str, Any]) -> dict[str, Any]:
            out = {}
            for k, v in row.items():
                if v is None or isinstance(v, bool | int | float):
                    out[k] = v
                elif v == old_created:
                    out[k] = new_created
                elif v == old_due:
                    out[k] = new_due
                else:
                    out[k] = v
            return out

        lead = swap(tpl.lead) | {"id": lead_id, "name": name, "phone": phone}
        raw = dict(db.value(tpl.lead["raw"]))
        raw.update({k: v for k, v in (("name", name), ("phone", phone)) if k in raw})
        lead["raw"] = raw
        children = {t: [swap(r) | {"lead_id": lead_id} for r in rows] for t, rows in tpl.children.items()}
        return Bundle(lead, children)


def insert_bundles(db: Backend, conn: RawConn, bundles: Sequence[Bundle]) -> None:
    """One transaction: the leads, every child row, and the managers' open_leads."""
    if not bundles:
        return
    per_manager = Counter(b.lead["manager_id"] for b in bundles if b.lead["manager_id"] is not None)
    with db.transaction(conn) as cur:
        db.lock_team(cur)  # as take_lead does (lock_teams) before it touches the managers' rows
        columns = list(bundles[0].lead)
        db.bulk(cur, "leads", columns, [db.convert("leads", b.lead, columns) for b in bundles])
        for table in bundles[0].children:
            columns = list(bundles[0].children[table][0])
            rows = [db.convert(table, r, columns) for b in bundles for r in b.children[table]]
            db.bulk(cur, table, columns, rows)
        cur.executemany(f"UPDATE managers SET open_leads = open_leads + {db.ph} WHERE id = {db.ph}",
                        [(n, manager_id) for manager_id, n in sorted(per_manager.items())])  # fmt: skip
        db.after_insert(cur)


def fetch(conn: RawConn, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def scalar(conn: RawConn, sql: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(sql, tuple(params)).fetchone()
    return row[0] if row else None


def load_people(conn: RawConn) -> tuple[list[Person], Person, dict[str, int]]:
    rows = fetch(conn, "SELECT id, key, name, telegram_chat_id, open_leads FROM managers ORDER BY id")
    by_key = {r["key"]: Person(r["key"], r["id"], r["name"], r["telegram_chat_id"]) for r in rows}
    loads = {r["key"]: r["open_leads"] for r in rows}
    return [by_key[key] for key, _ in MANAGERS], by_key[HEAD[0]], loads


def _comparable(db: Backend, value: Any) -> Any:
    """JSON parsed (SQLite keeps text) with the managers' loads left out: the copies were routed later."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _comparable(db, v) for k, v in value.items() if k != "load"}
    if isinstance(value, list):
        return [_comparable(db, v) for v in value]
    return value


def make_cloner(db: Backend, conn: RawConn, app: Leadflow, checks: int = 3) -> tuple[Cloner, dict[str, Any]]:
    """Route one lead per manager through the real take_lead as templates; then route `checks` more and compare them,
    every column of every table with a lead_id, with copies made from the templates for the same client."""
    child_tables = db.child_tables(conn)
    now = utcnow()
    template_ids: dict[str, int] = {}
    for i in range(len(MANAGERS) * 3):
        if len(template_ids) == len(MANAGERS):
            break
        intake = take_lead(app, LeadIn(name=CLIENTS[i % len(CLIENTS)], phone=f"+38050{i:07d}"), now)
        if intake.manager_key and intake.status == "assigned":
            template_ids.setdefault(intake.manager_key, intake.lead_id)
    if not template_ids:
        raise RuntimeError("take_lead assigned none of the template leads")
    templates = {key: read_template(db, conn, lead_id, child_tables) for key, lead_id in template_ids.items()}
    people, _, _ = load_people(conn)
    later = now + timedelta(seconds=1)
    real = []
    for i in range(checks):
        phone, name = f"+38063{i:07d}", CLIENTS[(i + 3) % len(CLIENTS)]
        intake = take_lead(app, LeadIn(name=name, phone=phone), later)
        real.append((intake.lead_id, str(intake.manager_key), phone, name))
    cloner = Cloner(db, templates, people, int(scalar(conn, "SELECT max(id) FROM leads")) + 1)
    twins = [cloner.make(later, later + FIRST_CONTACT, person=cloner.by_key[key], phone=phone, name=name)
             for _, key, phone, name in real if key in templates]  # fmt: skip
    insert_bundles(db, conn, twins)
    diffs: list[str] = []
    p = db.ph
    for (real_id, *_), twin in zip(real, twins, strict=False):
        twin_id = twin.lead["id"]
        for table in ("leads", *child_tables):
            where = "id" if table == "leads" else "lead_id"
            a = fetch(conn, f"SELECT * FROM {table} WHERE {where} = {p} ORDER BY 1", (real_id,))
            b = fetch(conn, f"SELECT * FROM {table} WHERE {where} = {p} ORDER BY 1", (twin_id,))
            if len(a) != len(b):
                diffs.append(f"{table}: take_lead wrote {len(a)} row(s), the bulk copy {len(b)}")
                continue
            for ra, rb in zip(a, b, strict=True):
                for col in ra:
                    if col in ("id", "lead_id"):
                        continue
                    va, vb = _comparable(db, ra[col]), _comparable(db, rb[col])
                    if va != vb:
                        diffs.append(f"{table}.{col}: take_lead {va!r} vs bulk copy {vb!r}")
    if len(twins) < len(real):
        diffs.append("take_lead routed a check lead to a manager who has no template")
    shape = {
        "templates": len(templates), "leads_compared": len(twins),
        "tables": ["leads", *sorted(templates[next(iter(templates))].children)], "differences": diffs,
        "outbox_rows_of_real_intake": scalar(conn, "SELECT count(*) FROM outbox"),
        "note": "copies of real take_lead rows; no outbox row for the initial assignment (it would be sent during "
        "the measurement); candidates' loads are the template's",
    }  # fmt: skip
    return cloner, shape


def fill_open(db: Backend, conn: RawConn, maker: Cloner, count: int, start: datetime, chunk: int = 20_000) -> None:
    """`count` open leads created at `start`, deadlines spread uniformly over the next hour."""
    step = SPREAD / max(count, 1)
    done = 0
    while done < count:
        n = min(chunk, count - done)
        insert_bundles(db, conn, [maker.make(start, start + step * (done + i + 0.5)) for i in range(n)])
        done += n


def check_open_leads(conn: RawConn) -> dict[str, int]:
    counted = scalar(conn, "SELECT sum(open_leads) FROM managers")
    actual = scalar(conn, "SELECT count(*) FROM leads WHERE status = 'assigned' AND manager_id IS NOT NULL")
    running = scalar(conn, "SELECT count(*) FROM timers")
    return {"managers_open_leads": int(counted), "assigned_leads": int(actual), "timers": int(running)}


# --- a fake Telegram Bot API on loopback --------------------------------------------------------------------------


class FakeTelegram:
    """Answers sendMessage like the Bot API and records when each message arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[float, str, str]] = []  # (epoch seconds, chat id, text)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.telegram.org
            disable_nagle_algorithm = True  # else headers and body in two segments meet the client's delayed ACK

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    message = json.loads(body)
                except ValueError:
                    message = {}
                with outer.lock:
                    outer.received.append((at, str(message.get("chat_id")), str(message.get("text", ""))))
                    n = len(outer.received)
                answer = json.dumps({"ok": True, "result": {"message_id": n}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-telegram", daemon=True)
        self.thread.start()

    def first_to_owner(self, lo: int, hi: int) -> dict[int, float]:
        """Lead id → when its new owner's first message arrived, for escalation messages of leads lo..hi."""
        found: dict[int, float] = {}
        with self.lock:
            received = list(self.received)
        for at, chat, text in received:
            if chat == TEAM_CHAT:
                continue
            m = re.search(r"#(\d+)", text)
            if m and lo <= int(m.group(1)) <= hi:
                found.setdefault(int(m.group(1)), at)
        return found

    def count_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for at, _, _ in self.received if start <= at <= end)

    def reset(self) -> None:
        """Forget what arrived: lead ids start again in every fresh database."""
        with self.lock:
            self.received.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- worker processes -------------------------------------------------------------------------------------------------


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        text = self.err.read_text(encoding="utf-8", errors="replace") if self.err.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


class CpuMeter:
    def __init__(self, procs: Sequence[WorkerProc]) -> None:
        self.pids = [w.proc.pid for w in procs]
        self.start = time.perf_counter()
        self.cpu0 = sum(cpu_seconds(pid) for pid in self.pids)
        self.busy0 = machine_busy()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        cpu = sum(cpu_seconds(pid) for pid in self.pids) - self.cpu0
        busy, total = machine_busy()
        share = (busy - self.busy0[0]) / max(total - self.busy0[1], 1.0)
        return {"workers_cpu_s": round(cpu, 2), "workers_cpu_of_one_core": round(cpu / max(wall, 1e-9), 2),
                "machine_busy": round(share, 2)}  # fmt: skip


def worker_env(url: str, rules_path: Path, fake: FakeTelegram | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env |= {"LEADFLOW_DATABASE_URL": url, "LEADFLOW_RULES": str(rules_path)}
    if fake is not None:
        env |= {"LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN": BOT_TOKEN, "LEADFLOW_NOTIFY__TELEGRAM_API_BASE": fake.url}
    return env


def start_workers(count: int, env: dict[str, str], workdir: Path, label: str, timeout: float = 60) -> list[WorkerProc]:
    """`leadflow worker` processes (deadlines and deliveries), running once each has said so."""
    procs: list[WorkerProc] = []
    for i in range(count):
        out, err = workdir / f"{label}-worker{i}.out", workdir / f"{label}-worker{i}.err"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen([LEADFLOW, "worker"], env=env, cwd=workdir, stdout=o, stderr=e)
        procs.append(WorkerProc(proc, out, err))
    deadline = time.monotonic() + timeout
    for w in procs:
        while "worker running" not in w.out.read_text(encoding="utf-8", errors="replace"):
            if not w.alive():
                raise RuntimeError(f"a worker exited with {w.proc.returncode} at start:\n{w.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"a worker did not start within {timeout:.0f} s:\n{w.tail()}")
            time.sleep(0.05)
    return procs


def stop_workers(procs: Sequence[WorkerProc]) -> list[int | None]:
    for w in procs:
        if w.alive():
            w.proc.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for w in procs:
        try:
            codes.append(w.proc.wait(timeout=15))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            codes.append(w.proc.wait(timeout=10))
    return codes


def worker_problems(procs: Sequence[WorkerProc]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for w in procs:
        text = w.err.read_text(encoding="utf-8", errors="replace") if w.err.exists() else ""
        counts["failed_rounds"] += text.count("round failed")
        counts["tracebacks"] += text.count("Traceback")
        counts["delivery_warnings"] += text.count("will retry") + text.count("is dead")
    return dict(counts)


def ensure_alive(procs: Sequence[WorkerProc]) -> None:
    for w in procs:
        if not w.alive():
            raise RuntimeError(f"a worker exited with {w.proc.returncode}:\n{w.tail()}")


# --- measured phases ------------------------------------------------------------------------------------------------


def max_event_id(conn: RawConn) -> int:
    return int(scalar(conn, "SELECT coalesce(max(id), 0) FROM events"))


def escalated_count(db: Backend, conn: RawConn, after: int, lo: int, hi: int) -> int:
    p = db.ph
    sql = f"SELECT count(*) FROM events WHERE id > {p} AND type = 'lead.escalated' AND lead_id BETWEEN {p} AND {p}"
    return int(scalar(conn, sql, (after, lo, hi)))


def late_values(db: Backend, conn: RawConn, after: int, lo: int, hi: int) -> list[float]:
    p = db.ph
    sql = f"SELECT data FROM events WHERE id > {p} AND type = 'lead.escalated' AND lead_id BETWEEN {p} AND {p}"
    return [float(db.value(r[0])["late_ms"]) for r in conn.execute(sql, (after, lo, hi)).fetchall()]


def catch_up(db: Backend, conn: RawConn, procs: Sequence[WorkerProc], timeout: float) -> float | None:
    """Wait until nothing is overdue by more than 1 s (the workers have caught up); seconds waited, None on time-out."""
    started = time.monotonic()
    while True:
        ensure_alive(procs)
        overdue = scalar(conn, f"SELECT count(*) FROM timers WHERE due_at <= {db.ph}",
                         (db.ts(utcnow() - timedelta(seconds=1)),))  # fmt: skip
        if not overdue:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.2)


def outbox_drained(conn: RawConn, procs: Sequence[WorkerProc], timeout: float) -> float | None:
    """Wait until no notification is pending (the deliveries have caught up); seconds waited, None on time-out."""
    started = time.monotonic()
    while True:
        ensure_alive(procs)
        if not scalar(conn, "SELECT count(*) FROM outbox WHERE status = 'pending'"):
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.2)


class IntakeProber:
    """In a thread: every 0.2 s, how long the lock an intake takes first would be waited for."""

    def __init__(self, db: Backend, conn: RawConn, every: float = 0.2) -> None:
        self.db, self.conn, self.every = db, conn, every
        self.waits: list[float] = []
        self.failures: list[str] = []  # e.g. SQLite's "database is locked" after busy_timeout (30 s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="intake-prober", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                self.waits.append(self.db.intake_wait(self.conn))
            except Exception as exc:
                self.waits.append(time.perf_counter() - started)
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(self.every)

    def __enter__(self) -> IntakeProber:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


@dataclass
class Context:
    db: Backend
    url: str
    conn: RawConn  # polls and inserts
    probe: RawConn  # the intake lock probe
    maker: Cloner
    procs: list[WorkerProc]
    fake: FakeTelegram | None
    args: argparse.Namespace
    background: tuple[int, int]  # lead ids of the open leads filled in setup
    notes: list[str] = field(default_factory=list)


def run_burst(ctx: Context) -> dict[str, Any]:
    db, conn, n = ctx.db, ctx.conn, ctx.args.burst
    e0 = max_event_id(conn)
    due = utcnow()
    bundles = [ctx.maker.make(due - FIRST_CONTACT, due) for _ in range(n)]
    lo, hi = bundles[0].lead["id"], bundles[-1].lead["id"]
    meter = CpuMeter(ctx.procs)
    insert_bundles(db, conn, bundles)
    committed = time.time()
    committed_mono = time.monotonic()
    deadline = committed_mono + ctx.args.burst_timeout
    done = 0
    with IntakeProber(db, ctx.probe) as prober:
        while True:
            done = escalated_count(db, conn, e0, lo, hi)
            if done >= n or time.monotonic() > deadline:
                break
            ensure_alive(ctx.procs)
            time.sleep(POLL)
    clear_s = time.monotonic() - committed_mono
    cpu = meter.read()
    everything = int(scalar(conn, f"SELECT count(*) FROM events WHERE id > {db.ph} AND type = 'lead.escalated'",
                            (e0,)))  # fmt: skip
    result: dict[str, Any] = {
        "leads": n, "escalated": done, "complete": done >= n, "clear_s": round(clear_s, 2),
        "escalations_per_s": round(done / clear_s, 1),
        "all_escalations_in_window": everything, "all_escalations_per_s": round(everything / clear_s, 1),
        "commit_lag_ms": ms(committed - due.timestamp()),
        "late": dist(late_values(db, conn, e0, lo, hi)),
        "intake_lock_wait": dist([w * 1000 for w in prober.waits]),
        "intake_lock_failures": prober.failures,
        **cpu,
    }  # fmt: skip
    if ctx.fake is not None:
        # Let the outbox drain for a while: how far behind the escalations are the messages?
        drain_deadline = time.monotonic() + ctx.args.notify_timeout
        while len(ctx.fake.first_to_owner(lo, hi)) < done and time.monotonic() < drain_deadline:
            time.sleep(0.2)
        told = ctx.fake.first_to_owner(lo, hi)
        ended = time.time()
        result["notified_count"] = len(told)
        result["notified_complete"] = len(told) >= n
        result["notified"] = dist([(at - due.timestamp()) * 1000 for at in told.values()])
        result["notified_all_s_after_commit"] = round(max(told.values()) - committed, 2) if len(told) >= n else None
        result["notified_waited_s"] = round(ended - committed, 1)
        result["messages_per_s"] = round(ctx.fake.count_between(committed, ended) / (ended - committed), 1)
    return result


def run_trickle(ctx: Context) -> dict[str, Any]:
    db, conn, args = ctx.db, ctx.conn, ctx.args
    rate, seconds = args.trickle_rate, args.trickle_seconds
    total = int(rate * seconds)
    e0 = max_event_id(conn)
    lo = ctx.maker.next_id
    start = time.time() + TICK
    insert_ms: list[float] = []
    meter = CpuMeter(ctx.procs)
    j = k = 0
    while j < total:
        tick_at = start + k * TICK
        pause = tick_at - time.time()
        if pause > 0:
            time.sleep(pause)
        batch = []
        while j < total and j / rate < (k + 1) * TICK:
            due = datetime.fromtimestamp(start + TRICKLE_AHEAD + j / rate, UTC)
            batch.append(ctx.maker.make(due - FIRST_CONTACT, due))
            j += 1
        t0 = time.perf_counter()
        insert_bundles(db, conn, batch)
        if batch:
            insert_ms.append((time.perf_counter() - t0) * 1000)
        k += 1
        if k % 10 == 0:
            ensure_alive(ctx.procs)
    hi = ctx.maker.next_id - 1
    last_due = start + TRICKLE_AHEAD + (total - 1) / rate
    deadline = max(time.time(), last_due) + args.trickle_timeout
    done = 0
    while time.time() < deadline:
        done = escalated_count(db, conn, e0, lo, hi)
        if done >= total:
            break
        ensure_alive(ctx.procs)
        time.sleep(0.1)
    window = time.time() - start
    cpu = meter.read()
    blo, bhi = ctx.background
    background = late_values(db, conn, e0, blo, bhi)
    result: dict[str, Any] = {
        "rate_per_s": rate, "seconds": seconds, "leads": total, "escalated": done, "complete": done >= total,
        "late": dist(late_values(db, conn, e0, lo, hi)),
        "background_due_per_s": round(ctx.args.open / SPREAD.total_seconds(), 1),
        "background_late": dist(background),
        "insert_ms": dist(insert_ms),
        "window_s": round(window, 1),
        **cpu,
    }  # fmt: skip
    if ctx.fake is not None:
        time.sleep(2.0)  # the last messages
        told = ctx.fake.first_to_owner(lo, hi)
        dues = {lo + i: start + TRICKLE_AHEAD + i / rate for i in range(total)}
        result["notified"] = dist([(at - dues[lead_id]) * 1000 for lead_id, at in told.items()])
        result["notified_count"] = len(told)
    return result


# --- the bare-driver baseline ------------------------------------------------------------------------------------------


# The columns the bare-driver escalation writes (as escalate_due does through SQLAlchemy Core).
EVENT_COLUMNS = ("lead_id", "type", "actor", "data", "at")
ASSIGNMENT_COLUMNS = ("lead_id", "manager_id", "kind", "rule_key", "strategy", "reason", "candidates", "at")
TIMER_COLUMNS = ("lead_id", "kind", "due_at", "data", "created_at")


class RawEscalator:
    """Leadflow's writes for one escalation, statement by statement, with the bare driver and no ORM/Core."""

    def __init__(self, db: Backend, people: Sequence[Person], notify: bool) -> None:
        self.db = db
        self.people = list(people)
        self.by_key = {p.key: p for p in people}
        self.notify = notify
        self.turn = 0
        p = db.ph
        self.claim = (f"SELECT id, lead_id, data, due_at FROM timers WHERE kind = 'first_contact' AND due_at <= {p} "
                      f"ORDER BY due_at LIMIT {p}{db.claim_lock}")  # fmt: skip
        self.delete = f"DELETE FROM timers WHERE id = {p}"
        self.update_lead = (f"UPDATE leads SET manager_id = {p}, sla_hops = {p}, updated_at = {p}, assigned_at = {p}, "
                            f"sla_due_at = {p} WHERE id = {p}")  # fmt: skip
        self.insert_assignment = (f"INSERT INTO assignments ({', '.join(ASSIGNMENT_COLUMNS)}) "
                                  f"VALUES ({', '.join([p] * len(ASSIGNMENT_COLUMNS))})")  # fmt: skip
        self.insert_event = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                             f"VALUES ({', '.join([p] * len(EVENT_COLUMNS))}) RETURNING id")  # fmt: skip
        self.insert_timer = (f"INSERT INTO timers ({', '.join(TIMER_COLUMNS)}) "
                             f"VALUES ({', '.join([p] * len(TIMER_COLUMNS))})")  # fmt: skip
        self.add_load = f"UPDATE managers SET open_leads = open_leads + {p} WHERE id = {p}"
        outbox_cols = ("event_id", "channel", "recipient", "subject", "body", "payload", "status", "attempts",
                       "next_attempt_at", "created_at")  # fmt: skip
        self.insert_outbox = (f"INSERT INTO outbox ({', '.join(outbox_cols)}) "
                              f"VALUES ({', '.join([p] * len(outbox_cols))})")  # fmt: skip
        self.pointer = (f"INSERT INTO rr_pointers (rule_key, last_manager_key) VALUES ({p}, {p}) "
                        f"ON CONFLICT (rule_key) DO UPDATE SET last_manager_key = excluded.last_manager_key")  # fmt: skip

    def escalate(self, cur: Any, timer: tuple[Any, ...], now: datetime) -> None:
        db = self.db
        timer_id, lead_id, raw_data, due_at = timer
        data = db.value(raw_data)
        current = self.by_key[data["manager"]]
        excluded = {*data["tried"], current.key}
        while True:
            nxt = self.people[self.turn % len(self.people)]
            self.turn += 1
            if nxt.key not in excluded:
                break
        hop = int(data["hop"]) + 1
        due = due_at if isinstance(due_at, datetime) else datetime.fromisoformat(due_at).replace(tzinfo=UTC)
        ts_now, new_due = db.ts(now), db.ts(now + FIRST_CONTACT)
        reason = (f"no first contact by {current.name} within 10m; hop {hop}/3; next: {nxt.name}, "
                  f"round robin among {len(self.people) - len(excluded)} eligible")  # fmt: skip
        cur.execute(self.delete, (timer_id,))
        cur.execute(self.update_lead, (nxt.id, hop, ts_now, ts_now, new_due, lead_id))
        candidates = [{"key": p.key, "name": p.name, "eligible": True, "why": "", "load": 0, "capacity": CAPACITY}
                      for p in self.people if p.key not in excluded]  # fmt: skip
        cur.execute(self.insert_assignment, (lead_id, nxt.id, "escalation", RULE, "round_robin", reason,
                                             db.js(candidates), ts_now))  # fmt: skip
        late_ms = int((now - due).total_seconds() * 1000)
        event = {"reason": reason, "hop": hop, "max_hops": 3, "previous": current.key, "manager": nxt.key,
                 "due_at": due.isoformat(), "late_ms": late_ms}  # fmt: skip
        event_id = cur.execute(self.insert_event, (lead_id, "lead.escalated", "sla", db.js(event), ts_now)).fetchone()[
            0
        ]
        timer_data = {
            "hop": hop,
            "manager": nxt.key,
            "rule": RULE,
            "team": TEAM,
            "tried": [*data["tried"], current.key],
        }
        cur.execute(self.insert_timer, (lead_id, "first_contact", new_due, db.js(timer_data), ts_now))
        cur.execute(self.add_load, (-1, current.id))
        cur.execute(self.add_load, (1, nxt.id))
        cur.execute(self.pointer, (RULE, nxt.key))
        if self.notify:
            subject = f"Лід #{lead_id} чекає на тебе: {CLIENTS[lead_id % len(CLIENTS)]}"
            body = (f"Колега ({current.name}) не встиг обробити ліда? Забирай, інакше за 10 хв втратиш шанс "
                    f"заробити!\n\nІм'я: {CLIENTS[lead_id % len(CLIENTS)]}\nТелефон: +380670000000\nДжерело: web\n\n"
                    f"Ескалація {hop} з 3.\nhttp://127.0.0.1:8000/api/v1/leads/{lead_id}")  # fmt: skip
            payload = {"event": "lead.escalated", "event_id": event_id, "language": "uk",
                       "lead": {"id": lead_id, "channel": "web"}, "reason": reason, "hop": hop,
                       "message": {"subject": subject, "text": body}}  # fmt: skip
            for chat in (nxt.chat or "0", TEAM_CHAT):
                cur.execute(self.insert_outbox, (event_id, "telegram", chat, subject, body, db.js(payload), "pending",
                                                 0, ts_now, ts_now))  # fmt: skip

    def run(self, conn: RawConn, count: int, per_tx: int, cap: float) -> dict[str, Any]:
        done = 0
        started = time.perf_counter()
        while done < count and time.perf_counter() - started < cap:
            now = utcnow()
            with self.db.transaction(conn) as cur:
                due = cur.execute(self.claim, (self.db.ts(now), min(per_tx, count - done))).fetchall()
                for timer in due:
                    self.escalate(cur, timer, now)
            if not due:
                break
            done += len(due)
        seconds = time.perf_counter() - started
        return {"escalations": done, "per_transaction": per_tx, "seconds": round(seconds, 3),
                "escalations_per_s": round(done / seconds, 1)}  # fmt: skip


class StatementTimer:
    """SQLAlchemy engine hooks: how many statements of which kind, and the time spent inside the driver call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count: Counter[str] = Counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def kind(statement: str) -> str:
        text = " ".join(statement.split())
        verb = text.split(" ", 1)[0].upper()
        if verb == "SELECT":
            m = re.search(r"\bFROM (\w+)", text)
            where = m.group(1) if m else "?"
            lock = " FOR UPDATE" + (" SKIP LOCKED" if "SKIP LOCKED" in text else "") if "FOR UPDATE" in text else ""
            return f"SELECT {where}{lock}"
        m = re.match(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)", text, re.I)
        return f"{m.group(1).upper()} {m.group(2)}" if m else verb

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        key = self.kind(statement)
        self.count[key] += 1
        self.seconds[key] += time.perf_counter() - self._started

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def summary(self, escalations: int, wall: float) -> dict[str, Any]:
        per = max(escalations, 1)
        return {
            "statements_per_escalation": round(sum(self.count.values()) / per, 2),
            "driver_seconds_share": round(sum(self.seconds.values()) / max(wall, 1e-9), 2),
            "by_statement": {k: {"per_escalation": round(self.count[k] / per, 2),
                                 "ms_per_escalation": round(self.seconds[k] * 1000 / per, 3)}
                             for k in sorted(self.count, key=lambda k: -self.seconds[k])},
        }  # fmt: skip


def run_inprocess(app: Leadflow, count: int, cap: float, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """escalate_due in this process, batches of 200, as the worker calls it (no sleeping, no deliveries)."""
    timer = None if profile else StatementTimer(app.engine)
    done = 0
    started = time.perf_counter()
    if profile:
        profile.enable()
    try:
        while done < count and time.perf_counter() - started < cap:
            moved = escalate_due(app, utcnow(), min(BATCH, count - done))
            if moved == 0:
                break
            done += moved
    finally:
        if profile:
            profile.disable()
        if timer:
            timer.close()
    seconds = time.perf_counter() - started
    out = {"escalations": done, "per_transaction": BATCH, "seconds": round(seconds, 3),
           "escalations_per_s": round(done / seconds, 1)}  # fmt: skip
    if timer:
        out |= timer.summary(done, seconds)
    return out


def profile_summary(profile: cProfile.Profile, top: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    out.write("\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run_baseline(ctx: Context, app: Leadflow, notify: bool) -> dict[str, Any]:
    """With the workers stopped: bare-driver escalations (1 and 200 per transaction) and escalate_due in-process."""
    args = ctx.args
    n_single, n_batch = min(args.baseline_single, args.burst), min(args.baseline_batch, args.burst)
    n_inproc, n_profile = args.inprocess, (args.profile_escalations if args.profile else 0)
    due = utcnow() - timedelta(seconds=1)
    bundles = [ctx.maker.make(due - FIRST_CONTACT, due) for _ in range(n_single + n_batch + n_inproc + n_profile)]
    for i in range(0, len(bundles), 20_000):
        insert_bundles(ctx.db, ctx.conn, bundles[i : i + 20_000])
    people, _, _ = load_people(ctx.conn)
    raw = RawEscalator(ctx.db, people, notify)
    result: dict[str, Any] = {
        "raw_1_per_tx": raw.run(ctx.conn, n_single, 1, args.phase_seconds),
        "raw_200_per_tx": raw.run(ctx.conn, n_batch, BATCH, args.phase_seconds),
        "leadflow_inprocess": run_inprocess(app, n_inproc, args.phase_seconds),
    }
    if n_profile:
        profile = cProfile.Profile()
        run_inprocess(app, n_profile, args.phase_seconds, profile)
        result["profile"] = profile_summary(profile)
    result["writes_per_escalation"] = ("claim timers; delete timer; update lead; insert assignment, event (returning id), "
                                       "timer; update 2 managers; upsert rr_pointer" +
                                       ("; insert 2 outbox rows" if notify else ""))  # fmt: skip
    return result


# --- one configuration --------------------------------------------------------------------------------------------------


def run_config(
    db: Backend, rules: RulesFile, rules_path: Path, workers: int, args: argparse.Namespace, workdir: Path,
    fake: FakeTelegram | None, baseline: bool,
) -> dict[str, Any]:  # fmt: skip
    label = f"{db.kind}_w{workers}"
    console.print(f"[bold]{db.kind}, {workers} worker(s)[/bold]: setup")
    url = db.create(label)
    result: dict[str, Any] = {"database": db.kind, "workers": workers}
    procs: list[WorkerProc] = []
    engine: Engine | None = None
    conns: list[RawConn] = []
    try:
        engine = make_engine(url)
        with engine.begin() as c:
            apply_rules_people(c, rules, utcnow())
        app = Leadflow(engine=engine, rules=rules, notify=NotifyConfig())
        conn, probe = db.connect(url), db.connect(url)
        conns += [conn, probe]
        result["settings"] = db.settings(conn)
        maker, shape = make_cloner(db, conn, app)
        result["shape_check"] = shape
        if shape["differences"]:
            for d in shape["differences"]:
                console.print(f"[red]shape differs:[/red] {escape(d)}")
            if not args.allow_shape_drift:
                raise RuntimeError(
                    "the bulk rows do not look like what take_lead writes (--allow-shape-drift to go on)"
                )
        started = time.perf_counter()
        fill_start = utcnow()
        blo = maker.next_id
        fill_open(db, conn, maker, args.open, fill_start)
        result["background_lead_ids"] = [blo, maker.next_id - 1]
        result["fill_s"] = round(time.perf_counter() - started, 1)
        db.settle(url, conn)
        result["consistency_after_fill"] = check_open_leads(conn)
        engine.dispose()  # the in-process app reconnects when the baseline needs it

        if fake is not None:
            fake.reset()
        env = worker_env(url, rules_path, fake)
        procs = start_workers(workers, env, workdir, label)
        result["setup_backlog_cleared_s"] = catch_up(db, conn, procs, args.catch_up_timeout)
        if fake is not None:
            # The deadlines passed during the fill leave messages to send; the trickle's own are measured after.
            result["setup_outbox_drained_s"] = outbox_drained(conn, procs, args.catch_up_timeout)
        ctx = Context(db, url, conn, probe, maker, procs, fake, args, (blo, maker.next_id - 1))
        # The trickle first: the steady state, before the burst leaves thousands of notifications to deliver.
        console.print(f"  trickle: {args.trickle_rate:g} deadlines/s for {args.trickle_seconds:g} s")
        result["trickle"] = run_trickle(ctx)
        t = result["trickle"]
        console.print(f"  trickle late p50 {t['late'].get('p50_ms')} ms, p99 {t['late'].get('p99_ms')} ms; "
                      f"burst of {args.burst:,}")  # fmt: skip
        result["trickle_backlog_cleared_s"] = catch_up(db, conn, procs, args.catch_up_timeout)
        result["burst"] = run_burst(ctx)
        b = result["burst"]
        console.print(f"  burst: {b['escalated']:,} escalated in {b['clear_s']} s ({b['escalations_per_s']:,.0f}/s)")
        result["worker_exit_codes"] = stop_workers(procs)
        result["worker_log"] = worker_problems(procs)
        procs = []
        result["consistency_at_end"] = check_open_leads(conn)
        if baseline:
            console.print("  baseline: bare driver and in-process escalate_due")
            result["baseline"] = run_baseline(ctx, app, fake is not None)
    finally:
        if procs:
            stop_workers(procs)
        for c in conns:
            c.close()
        if engine is not None:
            engine.dispose()
        db.drop(url)
    return result


# --- report -------------------------------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _told(d: dict[str, Any], key: str, total: int) -> str:
    """A notification percentile, or how many were told when not all were."""
    told = d.get("notified_count")
    if told is None:
        return "-"
    if told < total:
        return f"{told / max(total, 1):.0%} told"
    return _f(d.get("notified", {}).get(key))


def report(result: dict[str, Any]) -> None:
    runs = result["runs"]
    rows = []
    for r in runs:
        t = r["trickle"]
        met = "yes" if t["complete"] and t["late"].get("p99_ms", 1e9) < TARGET_TRICKLE_P99_MS else "NO"
        rows.append([
            r["database"], str(r["workers"]), f"{t['rate_per_s']:g}+{t['background_due_per_s']:g}",
            _f(t["late"].get("p50_ms")), _f(t["late"].get("p90_ms")), _f(t["late"].get("p99_ms")),
            _f(t["late"].get("max_ms")), _f(t["background_late"].get("p99_ms")), _told(t, "p50_ms", t["leads"]),
            _told(t, "p99_ms", t["leads"]), _f(t["insert_ms"].get("p99_ms"), ",.1f"), met,
        ])  # fmt: skip
    print_table(
        f"Trickle: deadlines at a steady rate for {result['args']['trickle_seconds']:g} s, "
        f"{result['args']['open']:,} open leads",
        ["database", "workers", "due/s", "late p50 ms", "p90", "p99", "max", "open p99", "told p50 ms", "told p99",
         "insert p99 ms", f"p99 < {TARGET_TRICKLE_P99_MS:.0f}"],
        rows,
        caption="due/s: trickle + the open leads' own deadlines; late: late_ms as the product records it (escalation "
        "start - deadline); open p99: the open leads due in the same window; told: deadline → the new owner's "
        "Telegram message; insert: the bench's per-tick commit of new leads (takes the lock intake takes)",
    )  # fmt: skip
    rows = []
    for r in runs:
        b = r["burst"]
        met = "yes" if b["complete"] and b["clear_s"] < TARGET_BURST_SECONDS else "NO"
        cleared = f"{b['clear_s']:.1f}" if b["complete"] else f">{b['clear_s']:.0f} ({b['escalated'] / b['leads']:.0%})"
        rows.append([
            r["database"], str(r["workers"]), cleared, _f(b["escalations_per_s"]), _f(b["late"].get("p50_ms")),
            _f(b["late"].get("p99_ms")), _told(b, "p50_ms", b["leads"]), _told(b, "p99_ms", b["leads"]),
            _f(b.get("messages_per_s")), _f(b["intake_lock_wait"].get("p99_ms")),
            _f(b["intake_lock_wait"].get("max_ms")), f"{b['workers_cpu_of_one_core']:.2f}",
            f"{b['machine_busy']:.0%}", met,
        ])  # fmt: skip
    print_table(
        f"Burst: {result['args']['burst']:,} deadlines at one instant",
        ["database", "workers", "cleared s", "esc/s", "late p50 ms", "p99", "told p50 ms", "p99", "msg/s",
         "intake wait p99 ms", "max", "worker CPU", "machine", f"< {TARGET_BURST_SECONDS:.0f} s"],
        rows,
        caption="cleared: the burst's commit → all of it escalated; late includes the burst's own commit "
        "(commit_lag_ms in the JSON); told: deadline → the new owner's Telegram message (within --notify-timeout); "
        "msg/s: messages the fake Bot API received; intake wait: how long take_lead's first lock (SQLite BEGIN "
        "IMMEDIATE, PostgreSQL the team row) waited, probed every 0.2 s; worker CPU: core-seconds per second",
    )  # fmt: skip
    rows = []
    for r in runs:
        base = r.get("baseline")
        if not base:
            continue
        raw200 = base["raw_200_per_tx"]["escalations_per_s"]
        worker = r["burst"]["escalations_per_s"]
        inproc = base["leadflow_inprocess"]
        rows.append([
            r["database"], _f(base["raw_1_per_tx"]["escalations_per_s"]), _f(raw200),
            _f(inproc["escalations_per_s"]), _f(worker), f"{inproc['escalations_per_s'] / raw200:.2f}",
            f"{worker / raw200:.2f}", f"{inproc.get('statements_per_escalation', 0):g}",
            f"{inproc.get('driver_seconds_share', 0):.0%}",
        ])  # fmt: skip
    if rows:
        print_table(
            "Escalations/s: leadflow vs the bare driver writing the same rows (one connection)",
            ["database", "raw 1/tx", "raw 200/tx", "leadflow in-process", "leadflow worker", "in-process / raw",
             "worker / raw", "statements/esc", "in driver"],
            rows,
            caption="raw: " + next(r["baseline"]["writes_per_escalation"] for r in runs if r.get("baseline")) + "; "
            "leadflow worker: the burst rate of one worker process (deliveries running beside it); in driver: share "
            "of the in-process wall time inside cursor.execute (round trips, server work, SQLite's own work)",
        )  # fmt: skip
        for r in runs:
            by = r.get("baseline", {}).get("leadflow_inprocess", {}).get("by_statement")
            if by:
                print_table(
                    f"escalate_due statements per escalation, {r['database']}",
                    ["statement", "per escalation", "ms per escalation"],
                    [[k, f"{v['per_escalation']:g}", f"{v['ms_per_escalation']:.3f}"] for k, v in by.items()],
                )
    for r in runs:
        if r.get("baseline", {}).get("profile"):
            console.print(f"[bold]profile of escalate_due in-process, {r['database']}[/bold]")
            console.print(r["baseline"]["profile"], markup=False)


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians per configuration when the same configuration ran more than once (--repeat)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(f"{r['database']}/{r['workers']}", []).append(r)
    out: dict[str, Any] = {}
    for key, rs in groups.items():
        out[key] = {
            "runs": len(rs),
            "burst_clear_s": median([r["burst"]["clear_s"] for r in rs]),
            "burst_escalations_per_s": median([r["burst"]["escalations_per_s"] for r in rs]),
            "trickle_late_p50_ms": median([r["trickle"]["late"].get("p50_ms", float("nan")) for r in rs]),
            "trickle_late_p99_ms": median([r["trickle"]["late"].get("p99_ms", float("nan")) for r in rs]),
        }
    return out


# --- main ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--open", type=int, default=100_000, help="open leads, deadlines spread over an hour")
    parser.add_argument("--burst", type=int, default=10_000, help="leads due at the same instant")
    parser.add_argument("--trickle-seconds", type=float, default=30.0)
    parser.add_argument("--trickle-rate", type=float, default=30.0, help="trickle deadlines per second")
    parser.add_argument("--workers", default="1,2", help="worker processes on PostgreSQL, one run each (SQLite: 1)")
    parser.add_argument("--repeat", type=int, default=1, help="run every configuration this many times")
    parser.add_argument("--notify", action=argparse.BooleanOptionalAction, default=True,
                        help="Telegram chats for everyone and a fake Bot API on loopback (default on)")  # fmt: skip
    parser.add_argument("--baseline-single", type=int, default=1000, help="bare-driver escalations, 1 per transaction")
    parser.add_argument("--baseline-batch", type=int, default=5000, help="bare-driver escalations, 200 per transaction")
    parser.add_argument("--inprocess", type=int, default=2000, help="in-process escalate_due escalations")
    parser.add_argument("--profile", action="store_true", help="also cProfile an in-process escalate_due run")
    parser.add_argument("--profile-escalations", type=int, default=1000)
    parser.add_argument("--allow-shape-drift", action="store_true",
                        help="go on when the bulk rows differ from what take_lead writes (reported in the JSON)")  # fmt: skip
    parser.add_argument("--burst-timeout", type=float, default=90.0, help="give up on the burst after this long")
    parser.add_argument("--catch-up-timeout", type=float, default=60.0,
                        help="longest wait for the workers to catch up before a phase")  # fmt: skip
    parser.add_argument("--phase-seconds", type=float, default=20.0, help="time cap of each baseline run")
    parser.add_argument("--trickle-timeout", type=float, default=30.0)
    parser.add_argument("--notify-timeout", type=float, default=20.0,
                        help="how long to wait for the burst's notifications before the trickle")  # fmt: skip
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="server and maintenance database (default: %(default)s)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go (default: the temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    args.worker_counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if not args.worker_counts or min(args.worker_counts) < 1:
        parser.error("--workers: a comma-separated list of counts >= 1")
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rules_src = rules_text(args.notify)
    rules = parse_rules(rules_src, "bench-sla-rules.yaml")
    rules_path = workdir / "rules.yaml"
    rules_path.write_text(rules_src, encoding="utf-8")
    kinds = ["sqlite", "postgresql"] if args.database == "all" else [args.database]
    result: dict[str, Any] = {
        "machine": machine_info(workdir if "sqlite" in kinds else None),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": [],
    }
    fake = FakeTelegram() if args.notify else None
    try:
        for kind in kinds:
            if kind == "sqlite":
                for rep in range(args.repeat):
                    db: Backend = SqliteBackend(workdir)
                    result["runs"].append(run_config(db, rules, rules_path, 1, args, workdir, fake, rep == 0))
            else:
                with postgres_scratch(args.pg_url) as scratch:
                    for rep in range(args.repeat):
                        for i, workers in enumerate(args.worker_counts):
                            db = PostgresBackend(scratch)
                            result["runs"].append(run_config(db, rules, rules_path, workers, args, workdir, fake,
                                                             rep == 0 and i == 0))  # fmt: skip
    finally:
        if fake is not None:
            fake.close()
    result["medians"] = summarize(result["runs"])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-sla-", dir=args.dir) as tmp:
        result = run(args, Path(tmp))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        console.print(f"[dim]figures written to {args.json}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
