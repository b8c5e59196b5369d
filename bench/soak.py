"""Soak: the real server under a steady stream of leads; its memory, latency and errors over time.

    .venv/bin/python -m bench.soak [--minutes 60] [--rate 50] [--managers 8] [--deadline 30s] [--every 10] [--notify]
                                   [--tracemalloc | --census] [--env MALLOC_ARENA_MAX=2] [--json PATH]

* `leadflow serve` (API and worker in one process) runs as a subprocess on a fresh SQLite file, with a rules file of
  one team (--managers managers and a head), a --deadline first-contact deadline on the wall clock and a chain of two
  hops then the head, so the worker escalates all the time; with --notify every event is also sent to a signed-webhook
  receiver on loopback, so the outbox is written and drained as in production;
* an asyncio httpx client posts --rate distinct leads a second for --minutes (names, phones in several layouts,
  e-mails, company names, messages, UTM tags, web forms, channel ids; about 12% are repeat clients, 1% repeated
  deliveries, 3% junk), and records a first contact for --contact-share of them before their deadline;
* every --sample seconds it reads the server's VmRSS (with RssAnon, RssFile + RssShmem) and CPU time from /proc;
  latency p50/p99 and errors (anything but 200/201, time-outs, and leads not sent because --in-flight requests were
  already waiting) are kept per minute of sending.

It prints a line a minute, a table per --every minutes, and a verdict: the RSS growth rate (least squares) over the
first and the last third of the run, and whether it levels off. It stops by itself: at most rate x minutes x 60
leads, in-flight requests get 15 s after the last send, the server gets SIGTERM then SIGKILL.

--tracemalloc runs the server through bench/soak_server.py, which starts tracemalloc and then the same `serve` code;
snapshots are taken after --warmup seconds and at the end, and the largest growths by line are printed (by traceback
too with --frames over 1), with the functools caches, large module-level containers and object counts that changed.
Tracing makes the server several times slower: use a lower --rate. --census runs the same launcher without tracing.
What the figures mean and the latest ones: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.common import console, machine_info, percentile, print_table

LEADFLOW = shutil.which("leadflow") or str(Path(sys.executable).parent / "leadflow")
HOST = "127.0.0.1"

FIRST = (("Олександр", "oleksandr"), ("Марія", "maria"), ("Іван", "ivan"), ("Юлія", "yulia"), ("Дмитро", "dmytro"),
         ("Анна", "anna"), ("Сергій", "serhii"), ("Катерина", "kateryna"), ("Василь", "vasyl"), ("Софія", "sofia"),
         ("Андрій", "andrii"), ("Олена", "olena"), ("Тарас", "taras"), ("Ірина", "iryna"), ("Максим", "maksym"),
         ("Наталія", "natalia"), ("Роман", "roman"), ("Оксана", "oksana"), ("Piotr", "piotr"), ("Ewa", "ewa"),
         ("John", "john"), ("Olga", "olga"))  # fmt: skip
LAST = (("Шевчук", "shevchuk"), ("Поліщук", "polishchuk"), ("Бойко", "boiko"), ("Ткачук", "tkachuk"),
        ("Руденко", "rudenko"), ("Петренко", "petrenko"), ("Кузьменко", "kuzmenko"), ("Павленко", "pavlenko"),
        ("Мороз", "moroz"), ("Гончаренко", "honcharenko"), ("Коваль", "koval"), ("Мельник", "melnyk"),
        ("Nowak", "nowak"), ("Smith", "smith"), ("Kowalska", "kowalska"))  # fmt: skip
ROOTS = ("Ромашка", "Агро", "Буд", "Світло", "Техно", "Дніпро", "Карпати", "Зерно", "Логістик", "Медіа", "Фарм", "Еко",
         "Сіті", "Транс", "Інвест", "Поділля", "Атлант", "Green", "Nova", "Smart", "Prime", "Vector", "Polissia",
         "Orion", "Delta", "Stream")  # fmt: skip
SUFFIXES = ("Плюс", "Сервіс", "Трейд", "Груп", "Систем", "Девелопмент", "Капітал", "Logistics", "Soft", "Foods", "Auto",
            "Energy", "Market", "Build")  # fmt: skip
FORMS = ("ТОВ «{}»", "{} LLC", 'ПП "{}"', "ФОП {}", "{} Ltd", "{}", "ТзОВ {}", "{} GmbH", 'ООО "{}"')
DOMAINS = ("gmail.com", "ukr.net", "i.ua", "meta.ua", "outlook.com", "wp.pl")
PL_CODES = ("50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88")
UA_CODES = ("050", "063", "066", "067", "068", "073", "093", "095", "096", "097", "098", "099")
NEEDS = ("Потрібен кредит на обладнання", "Цікавить лізинг авто", "Хочу застрахувати склад", "Нужен кредит",
         "Interested in leasing two trucks", "Передзвоніть, будь ласка", "Скільки коштує лізинг трактора?",
         "Need a quote for fleet insurance", "Хочемо рефінансувати кредит", "")  # fmt: skip
DETAILS = ("до кінця місяця", "сума близько {} тис. грн", "after 14:00 please", "є питання щодо ставки",
           "телефонуйте на мобільний", "we are a client of yours already", "терміново", "")  # fmt: skip
PRODUCTS = (("credit", 45), ("leasing", 35), ("insurance", 10), (None, 10))
CHANNELS = (("web", 45), ("facebook", 20), ("telegram", 10), ("phone", 15), ("form", 10))


def rules_text(managers: int, deadline: str) -> str:
    people = [f"m{i:02d}" for i in range(1, managers + 1)]
    lines = [f"  - {{key: {k}, name: Manager {k}, team: sales, products: [credit, leasing, insurance], "
             f"languages: [uk, ru, en], capacity: 100000}}" for k in people]  # fmt: skip
    half = ", ".join(people[: max(2, managers // 2)])
    return f"""version: 1
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {{key: sales, name: Sales, timezone: Europe/Kyiv, head: head, hours: always}}
managers:
{chr(10).join(lines)}
  - {{key: head, name: Head of sales, team: sales, products: [credit, leasing, insurance], capacity: 100000}}
routing:
  rules:
    - {{key: leasing, priority: 20, when: {{product: leasing}}, team: sales, require: [product], strategy: least_loaded}}
    - {{key: credit, priority: 10, when: {{product: credit}}, team: sales, managers: [{half}], strategy: round_robin}}
  fallback: {{team: sales, managers: [{", ".join(people)}], strategy: round_robin}}
junk:
  own_domains: [soak-credit.ua]
  keywords: [test lead, casino]
  blocked_sources: [spam-partner]
  require_contact: true
sla:
  default: {{first_contact: {deadline}, count: wall_clock, chain: {{max_hops: 2, final: team_head}}}}
  channels: {{}}
"""


# --- leads ---------------------------------------------------------------------------------------------------------


@dataclass
class Request:
    body: dict[str, Any]
    form: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class Leads:
    """Distinct leads from a fixed seed, with repeat clients and repeated deliveries among them."""

    def __init__(self, seed: int, company_pool: int = 0) -> None:
        self.rnd = random.Random(seed)
        self.company_pool = [self._company() for _ in range(company_pool)]
        self.clients: list[tuple[str, str, str | None, str | None]] = []  # digits, name, e-mail, company
        self.sent: list[Request] = []  # web posts with an idempotency key, for repeated deliveries

    def _weighted(self, table: Sequence[tuple[Any, int]]) -> Any:
        return self.rnd.choices([v for v, _ in table], [w for _, w in table])[0]

    def _phone(self, digits: str) -> str:
        if digits.startswith("48"):
            return f"+48 {digits[2:5]} {digits[5:8]} {digits[8:]}"
        local = "0" + digits[3:]
        return self.rnd.choice((f"+380 {digits[3:5]} {digits[5:8]} {digits[8:10]} {digits[10:]}",
                                f"{local[:3]} {local[3:6]} {local[6:8]} {local[8:]}", local,
                                f"+38({local[:3]}){local[3:6]}-{local[6:8]}-{local[8:]}", digits))  # fmt: skip

    def _client(self) -> tuple[str, str, str | None, str | None]:
        r = self.rnd
        if r.random() < 0.05:
            digits = "48" + r.choice(PL_CODES) + "".join(r.choices("0123456789", k=7))
        else:
            digits = "380" + r.choice(UA_CODES)[1:] + "".join(r.choices("0123456789", k=7))
        (first, first_l), (last, last_l) = r.choice(FIRST), r.choice(LAST)
        email = f"{first_l}.{last_l}{r.randint(1, 9999)}@{r.choice(DOMAINS)}" if r.random() < 0.6 else None
        company = None
        if r.random() < 0.55:
            company = r.choice(self.company_pool) if self.company_pool else self._company()
        return digits, f"{first} {last}", email, company

    def _company(self) -> str:
        r = self.rnd
        name = f"{r.choice(ROOTS)}-{r.choice(SUFFIXES)}"
        if r.random() < 0.7:
            name += f" {r.randint(1, 999)}"
        return str(r.choice(FORMS).format(name))

    def make(self, i: int) -> Request:
        r = self.rnd
        if self.sent and r.random() < 0.01:
            return r.choice(self.sent)  # a channel that delivers the same lead twice
        if self.clients and r.random() < 0.12:
            digits, name, email, company = r.choice(self.clients)  # a client who writes again
            email = email.upper() if email and r.random() < 0.3 else email
        else:
            digits, name, email, company = self._client()
            self.clients.append((digits, name, email, company))
            if len(self.clients) > 5000:
                self.clients.pop(r.randrange(len(self.clients)))
        channel = self._weighted(CHANNELS)
        body: dict[str, Any] = {"channel": "web" if channel == "form" else channel, "name": name}
        if r.random() < 0.9 or email is None:
            body["phone"] = self._phone(digits)
        for key, value in (("email", email), ("company", company), ("product", self._weighted(PRODUCTS))):
            if value is not None:
                body[key] = value
        need = r.choice(NEEDS)
        if need:
            body["message"] = f"{need}, {r.choice(DETAILS).format(r.randint(50, 5000))}".strip(", ")
        if r.random() < 0.5:
            body["budget"] = r.choice((r.randint(10, 5000) * 1000, f"{r.randint(1, 900)} 000,00"))
        if r.random() < 0.3:
            body["language"] = r.choice(("uk", "ru", "en", "uk-UA"))
        if r.random() < 0.03:  # junk: a test post, a blocked partner, one of our own addresses
            body.update(r.choice(({"message": "test lead, ignore"}, {"source": "spam-partner"},
                                  {"email": f"{i}@soak-credit.ua"})))  # fmt: skip
        if channel in ("facebook", "telegram"):
            body["external_id"] = f"{channel[:2]}-{i}-{r.randint(0, 10**9)}"
        if channel in ("web", "form"):
            body.update(utm_source=r.choice(("google", "facebook", "instagram")), utm_medium="cpc",
                        utm_campaign=f"{body.get('product') or 'brand'}-{r.randint(1, 40)}")  # fmt: skip
        if channel == "form":
            body.update(page=r.choice(("/credit", "/leasing", "/")), _gotcha="")
            return Request({k: str(v) for k, v in body.items()}, form=True)
        request = Request(body)
        if channel == "web":
            request.headers["Idempotency-Key"] = str(uuid.UUID(int=r.getrandbits(128)))
            self.sent.append(request)
            if len(self.sent) > 1000:
                self.sent.pop(0)
        return request


# --- the server process ----------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, RssShmem (MB), Threads, and CPU seconds of a process."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[name] = int(value.split()[0]) / 1024
            elif name == "Threads":
                out[name] = int(value)
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def db_figures(path: Path) -> dict[str, int]:
    """Rows so far, pending notifications and deadlines, read from outside the server (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {
            "leads": conn.execute("SELECT coalesce(max(id), 0) FROM leads").fetchone()[0],
            "outbox_pending": conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0],
            "timers": conn.execute("SELECT count(*) FROM timers").fetchone()[0],
        }
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


class WebhookReceiver(BaseHTTPRequestHandler):
    """Answers every webhook with 204, in its own thread, so a busy client never makes deliveries wait."""

    protocol_version = "HTTP/1.1"
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        WebhookReceiver.received += 1

    def log_message(self, *args: Any) -> None:
        pass


# --- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    t0: float = 0.0
    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # minute -> ms
    errors: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    error_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[dict[str, float]] = field(default_factory=list)
    db: dict[int, dict[str, int]] = field(default_factory=dict)  # minute -> figures at its end
    in_flight: int = 0


async def drive(args: argparse.Namespace, base: str, server: subprocess.Popen[bytes], db_path: Path,
                snapshot: Path | None) -> Run:  # fmt: skip
    run = Run()
    leads = Leads(args.seed, args.company_pool)
    rnd = random.Random(args.seed + 1)
    duration = args.minutes * 60
    total = int(args.rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=args.timeout, limits=limits) as client:

        async def call(minute: int, method: str, url: str, kind: str, **kw: Any) -> httpx.Response | None:
            started = time.perf_counter()
            run.in_flight += 1
            try:
                response = await client.request(method, url, **kw)
            except httpx.HTTPError as exc:
                run.errors[minute] += 1
                run.error_kinds[f"{kind}: {type(exc).__name__}"] += 1
                return None
            finally:
                run.in_flight -= 1
            run.latencies[minute].append((time.perf_counter() - started) * 1000)
            run.counts[f"{kind} {response.status_code}"] += 1
            if response.status_code not in (200, 201):
                run.errors[minute] += 1
                run.error_kinds[f"{kind}: {response.status_code} {response.text[:120]}"] += 1
                return None
            return response

        async def post(i: int, minute: int) -> None:
            req = leads.make(i)
            kw: dict[str, Any] = {"data": req.body} if req.form else {"json": req.body}
            response = await call(minute, "POST", "/api/v1/leads", "lead", headers=req.headers, **kw)
            if response is None or req.form or rnd.random() >= args.contact_share:
                return
            answer = response.json()
            if not answer.get("created") or not answer.get("manager"):
                return
            await asyncio.sleep(rnd.uniform(0.1, 0.6) * args.deadline_seconds)  # called back before the deadline
            if time.monotonic() - run.t0 < duration:
                contact = {"manager": answer["manager"]["key"], "kind": "call", "outcome": "connected"}
                await call(int((time.monotonic() - run.t0) // 60), "POST", f"/api/v1/leads/{answer['id']}/contact",
                           "contact", json=contact)  # fmt: skip

        def sample() -> None:
            if server.poll() is None:
                load = os.getloadavg()[0]
                run.samples.append({"t": time.monotonic() - run.t0, "load": load, **proc_status(server.pid)})

        run.t0 = time.monotonic()
        sample()
        next_sample, next_minute, snapped = args.sample, 60.0, False
        for i in range(total):
            at = run.t0 + i / args.rate
            now = time.monotonic()
            if at > now:
                await asyncio.sleep(at - now)
            elapsed = time.monotonic() - run.t0
            if server.poll() is not None:
                console.print(f"[red]the server exited with {server.returncode}[/]")
                break
            if elapsed >= next_sample:
                sample()
                next_sample += args.sample
            if snapshot is not None and not snapped and elapsed >= args.warmup:
                server.send_signal(signal.SIGUSR1)
                snapped = True
            if elapsed >= next_minute:
                report_minute(run, int(next_minute // 60) - 1, db_path, args.every if next_minute < duration else 0)
                next_minute += 60
            if STOP.is_set():
                break
            if run.in_flight >= args.in_flight:  # the server is not keeping up: count the lead as lost, queue nothing
                run.errors[int(elapsed // 60)] += 1
                run.error_kinds[f"lead: not sent, {args.in_flight} requests in flight"] += 1
                continue
            task = asyncio.create_task(post(i, int(elapsed // 60)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        sample()
        if next_minute <= duration + 1:
            report_minute(run, int(next_minute // 60) - 1, db_path, 0)
        if snapshot is not None and server.poll() is None:
            server.send_signal(signal.SIGUSR1)
            await wait_for_file(Path(f"{snapshot}.2.json"), 120)
    return run


async def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


def report_minute(run: Run, minute: int, db_path: Path, every: int) -> None:
    """A line for the minute; every `every` minutes (0: never) the table so far."""
    run.db[minute] = db_figures(db_path)
    lat = run.latencies.get(minute, [])
    last = run.samples[-1]
    console.print(
        f"min {minute + 1:3d}: {len(lat):5d} requests, {run.errors.get(minute, 0)} errors, "
        f"p50 {percentile(lat, 50):6.1f} ms, p99 {percentile(lat, 99):7.1f} ms, RSS {last['VmRSS']:6.1f} MB "
        f"(anon {last['RssAnon']:.1f}), {run.db[minute]}"
    )
    if every and (minute + 1) % every == 0:
        print_windows(run, every, minute + 1)


# --- figures ---------------------------------------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, in y units per x unit."""
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else float("nan")


def rss_at(run: Run, seconds: float) -> dict[str, float]:
    return min(run.samples, key=lambda s: abs(s["t"] - seconds))


def windows(run: Run, every: int, upto: int) -> list[dict[str, Any]]:
    rows = []
    for start in range(0, upto, every):
        end = min(start + every, upto)
        lat = [x for m in range(start, end) for x in run.latencies.get(m, [])]
        a, b = rss_at(run, start * 60), rss_at(run, end * 60)
        span = [s for s in run.samples if start * 60 <= s["t"] <= end * 60] or [b]
        points = [(s["t"] / 60, s["VmRSS"]) for s in span]
        rows.append({
            "minutes": f"{start}-{end}", "rss_mb": round(b["VmRSS"], 1), "anon_mb": round(b["RssAnon"], 1),
            "file_shm_mb": round(b["RssFile"] + b["RssShmem"], 1), "mb_per_min": round(slope(points), 2),
            "requests": len(lat), "errors": sum(run.errors.get(m, 0) for m in range(start, end)),
            "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
            "cpu_pct": round(100 * (b["cpu"] - a["cpu"]) / max(b["t"] - a["t"], 1e-9), 1),
            "threads": int(b["Threads"]), "load": round(max(s["load"] for s in span), 2), **run.db.get(end - 1, {}),
        })  # fmt: skip
    return rows


def print_windows(run: Run, every: int, upto: int) -> list[dict[str, Any]]:
    rows = windows(run, every, upto)
    first = run.samples[0]
    columns = ["minutes", "RSS MB", "anon", "file+shm", "MB/min", "requests", "errors", "p50 ms", "p99 ms", "CPU %",
               "threads", "load max", "leads", "outbox pending", "timers"]  # fmt: skip
    table = [["start", f"{first['VmRSS']:.1f}", f"{first['RssAnon']:.1f}", f"{first['RssFile'] + first['RssShmem']:.1f}"]
             + [""] * 11]  # fmt: skip
    for r in rows:
        table.append([r["minutes"], f"{r['rss_mb']:.1f}", f"{r['anon_mb']:.1f}", f"{r['file_shm_mb']:.1f}",
                      f"{r['mb_per_min']:.2f}", f"{r['requests']:,}", str(r["errors"]), f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['cpu_pct']:.0f}", str(r["threads"]), f"{r['load']:.1f}", f"{r.get('leads', 0):,}",
                      str(r.get("outbox_pending", "")), str(r.get("timers", ""))])  # fmt: skip
    print_table(f"Server process, {every}-minute windows (RSS at the window's end)", columns, table)
    return rows


def verdict(run: Run, flat: float) -> dict[str, Any]:
    end = run.samples[-1]["t"]
    points = [(s["t"] / 60, s["VmRSS"]) for s in run.samples]
    first = slope([p for p in points if p[0] * 60 <= end / 3])
    last = slope([p for p in points if p[0] * 60 >= 2 * end / 3])
    levels = last <= max(flat, first / 4)
    console.print(
        f"RSS {run.samples[0]['VmRSS']:.1f} -> {run.samples[-1]['VmRSS']:.1f} MB (peak {run.samples[-1]['VmHWM']:.1f}); "
        f"growth {first:.2f} MB/min over the first third, {last:.2f} MB/min over the last third: "
        + ("[green]levels off[/]" if levels else "[red]still growing[/]")
        + f" (flat: at most {flat} MB/min or a quarter of the first third's rate)"
    )
    return {"first_third_mb_per_min": round(first, 3), "last_third_mb_per_min": round(last, 3), "levels_off": levels}


def compare_snapshots(prefix: Path, top: int, source: Path) -> list[str]:
    try:
        census = [json.loads(Path(f"{prefix}.{n}.json").read_text(encoding="utf-8")) for n in (1, 2)]
    except OSError as exc:
        console.print(f"[red]no snapshots: {exc}[/]")
        return []
    lines = []
    for key in ("lru_caches", "module_containers", "types"):
        before, after = census[0].get(key, {}), census[1].get(key, {})
        changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
        console.print(f"{key} (start -> end): {changed}", markup=False, highlight=False)
        lines.append(f"{key}: {changed}")
    if not Path(f"{prefix}.2").exists():
        return lines
    start, end = (tracemalloc.Snapshot.load(f"{prefix}.{n}") for n in (1, 2))
    size = sum(s.size for s in end.statistics("filename")) - sum(s.size for s in start.statistics("filename"))
    console.print(f"tracemalloc: traced memory grew {size / 2**20:+.1f} MB between the two snapshots")
    for group in ("lineno", "filename"):
        stats = end.compare_to(start, group)[:top]
        rows = [[str(s.traceback[0]).replace(str(source) + "/", ""), f"{s.size_diff / 2**20:+.2f}",
                 f"{s.size / 2**20:.2f}", f"{s.count_diff:+,}"] for s in stats]  # fmt: skip
        print_table(f"tracemalloc: largest growth by {group}", ["where", "MB diff", "MB at end", "blocks diff"], rows)
        lines += [" ".join(r) for r in rows]
    if end.traces and len(end.traces[0].traceback) > 1:
        for s in end.compare_to(start, "traceback")[:5]:
            console.print(f"{s.size_diff / 2**20:+.2f} MB, {s.count_diff:+,} blocks:")
            console.print("\n".join("    " + str(frame) for frame in s.traceback), markup=False, highlight=False)
    return lines


# --- main ------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--minutes", type=float, default=60, help="how long to send leads (default 60)")
    p.add_argument("--rate", type=float, default=50, help="leads a second (default 50)")
    p.add_argument("--managers", type=int, default=8, help="managers in the team, besides its head (default 8)")
    p.add_argument("--deadline", default="30s", help="first-contact deadline, like 30s (default 30s)")
    p.add_argument("--company-pool", type=int, default=0,
                   help="draw company names from this many (default 0: nearly every new client's is new)")  # fmt: skip
    p.add_argument("--contact-share", type=float, default=0.3, help="leads called back in time (default 0.3)")
    p.add_argument("--notify", action="store_true", help="send every event to a webhook receiver through the outbox")
    p.add_argument("--sample", type=float, default=10, help="seconds between RSS samples (default 10)")
    p.add_argument("--every", type=int, default=10, help="minutes per table row (default 10)")
    p.add_argument("--in-flight", type=int, default=200, help="requests in flight at most; more count as lost")
    p.add_argument("--timeout", type=float, default=10, help="seconds before a request counts as an error")
    p.add_argument("--flat", type=float, default=0.1, help="MB/min under which RSS counts as level (default 0.1)")
    p.add_argument("--tracemalloc", action="store_true", help="snapshot allocations after --warmup and at the end")
    p.add_argument("--census", action="store_true", help="without tracemalloc: caches and object counts only")
    p.add_argument("--warmup", type=float, default=60, help="seconds before the first snapshot (default 60)")
    p.add_argument("--frames", type=int, default=1, help="frames per trace; over 1 also prints the top tracebacks")
    p.add_argument("--top", type=int, default=15, help="allocation sites shown with --tracemalloc (default 15)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server, e.g. MALLOC_ARENA_MAX=2")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--source", type=Path, default=Path(__file__).resolve().parent.parent,
                   help="the leadflow source tree the server runs (default: this checkout)")  # fmt: skip
    p.add_argument("--dir", type=Path, default=None, help="where the database and the server log go (kept)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    match = re.fullmatch(r"(\d+)([sm])", args.deadline)
    if not match:
        p.error("--deadline: like 30s or 2m")
    args.deadline_seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    return args


STOP = threading.Event()  # set by SIGTERM or Ctrl-C: stop sending, print what there is, stop the server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: STOP.set())
    work = args.dir or Path(tempfile.mkdtemp(prefix="leadflow-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path, rules, log = work / "soak.db", work / "rules.yaml", work / "server.log"
    for stale in (db_path, *work.glob("soak.db-*"), *work.glob("tracemalloc.*")):
        stale.unlink(missing_ok=True)
    rules.write_text(rules_text(args.managers, args.deadline), encoding="utf-8")
    port = free_port()
    hooks = ThreadingHTTPServer((HOST, 0), WebhookReceiver)
    threading.Thread(target=hooks.serve_forever, name="webhooks", daemon=True).start()
    env = {
        **os.environ,
        **dict(e.split("=", 1) for e in args.env),
        "SOAK_TRACEMALLOC_FRAMES": str(args.frames if args.tracemalloc else 0),
    }
    if args.notify:
        env |= {"LEADFLOW_NOTIFY__WEBHOOK_URLS": f"http://{HOST}:{hooks.server_address[1]}/hook",
                "LEADFLOW_NOTIFY__WEBHOOK_SECRET": "soak-secret"}  # fmt: skip
    serve = ["--rules", str(rules), "--database", f"sqlite:///{db_path}", "--host", HOST, "--port", str(port)]
    snapshot = work / "tracemalloc" if args.tracemalloc or args.census else None
    launcher = [sys.executable, str(Path(__file__).with_name("soak_server.py")), str(snapshot)]
    command = [*launcher, *serve] if snapshot else [LEADFLOW, "serve", *serve]
    info = machine_info(work) | {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    console.print(f"soak: {args.rate:g} leads/s for {args.minutes:g} min, {args.managers} managers + head, deadline "
                  f"{args.deadline}, notify {args.notify}, env {args.env or '-'}; {info['uptime']}; in {work}")  # fmt: skip
    # The server runs in the work directory so that no .env file of the caller's is read.
    cwd_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(args.source), env.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=work, env=cwd_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 180  # tracemalloc with many frames makes the imports slow
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline or STOP.is_set():
                console.print(f"[red]the server did not start; see {log}[/]")
                return 1
            time.sleep(0.2)
        run = asyncio.run(drive(args, base, server, db_path, snapshot))
        if args.notify:
            run.counts["webhooks"] = WebhookReceiver.received
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        hooks.shutdown()
    rows = print_windows(run, args.every, max(1, round(args.minutes)))
    result = verdict(run, args.flat)
    final = db_figures(db_path)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    kinds = dict(conn.execute("SELECT kind, count(*) FROM assignments GROUP BY kind").fetchall())
    final["companies"] = conn.execute("SELECT count(DISTINCT company) FROM leads").fetchone()[0]
    conn.close()
    console.print(f"responses {dict(run.counts)}; assignments {kinds}; {final}; "
                  f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    for kind, n in run.error_kinds.items():
        console.print(f"[red]error[/] {n} x {kind}")
    tracemalloc_lines = compare_snapshots(snapshot, args.top, args.source) if snapshot else []
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "windows": rows, "verdict": result, "samples": run.samples,
                                         "responses": run.counts, "assignments": kinds, "errors": run.error_kinds,
                                         "tracemalloc": tracemalloc_lines}, indent=1))  # fmt: skip
    if args.dir is None and not args.tracemalloc:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
