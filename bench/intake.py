"""Intake benchmark: N leads through leadflow's full intake path beside raw inserts of the same rows.

    .venv/bin/python -m bench.intake [--leads 5000] [--contacts 100000] [--database sqlite|postgresql] [--repeat 3]

Per repeat, each on a fresh copy of one pre-filled base (100k contacts, 10k companies, 10 managers):

* full path: ``receive`` per lead, as the HTTP layer calls it: read, validate, normalise, idempotency check, junk rules,
  dedupe (contacts, open leads, companies), routing, one transaction per lead;
* raw, same rows: every INSERT / UPDATE / DELETE the full path sent, as captured from its driver calls in one
  untimed pass, replayed with the bare driver (stdlib ``sqlite3`` / ``psycopg``), one transaction per lead; the
  databases must end identical (a hash of every table), or the run stops;
* raw, lead row only: the ``leads`` INSERT alone, one per transaction.

Then the duplicate look-up alone (``find_matches``) at growing base sizes, and its query plans.
What the figures mean and the latest ones: docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import JSON, Engine, Table, event, text
from sqlalchemy.engine import Connection, make_url

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
    spread,
    sqlite_checkpoint,
    sqlite_connect,
)
from leadflow.bootstrap import assemble
from leadflow.core.cleaning import clean_lead, company_block, company_key
from leadflow.core.lead import CleanLead, LeadIn
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.services.intake import receive
from leadflow.settings import Settings
from leadflow.store.db import dumps_json, make_engine, migrate
from leadflow.store.matching import find_matches
from leadflow.store.tables import companies, contacts, leads, metadata
from leadflow.store.team_state import apply_rules_people

TARGET_RATIO = 0.40  # the full path, as `leadflow serve` builds it, beside the bare driver writing the same rows
SEED = 20261124
# Tuesday 09:00 in Kyiv; lead i arrives i seconds later, inside everyone's working hours.
START = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
BASE_CREATED = datetime(2026, 11, 1, tzinfo=UTC)
T = TypeVar("T")

# key, name, products, languages, anything else
MANAGERS = (
    ("m01", "Олена Коваль", "credit, leasing, deposit", "uk, ru", ""),
    ("m02", "Тарас Мельник", "credit, deposit", "uk, en", ""),
    ("m03", "Андрій Бондар", "leasing", "uk, ru, en", ""),
    ("m04", "Ірина Шевченко", "credit", "uk", ""),
    ("m05", "Богдан Ткаченко", "credit, leasing", "uk, ru", ""),
    ("m06", "Христина Олійник", "credit, deposit", "uk", ""),
    ("m07", "Максим Кравченко", "credit", "uk, en", ""),
    ("m08", "Наталія Лисенко", "leasing, deposit", "uk, ru", ""),
    ("m09", "Роман Савченко", "leasing, credit", "uk", ', hours: {mon-fri: "09:00-18:00"}'),
    ("m10", "Оксана Марченко", "credit", "uk", ", absent: true"),  # duplicates owned by her are routed by rules
)
RULES_HEAD = """
version: 1
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: m01, hours: always}
managers:
"""
RULES_TAIL = """
routing:
  rules:
    - key: leasing
      priority: 20
      when: {product: leasing}
      team: sales
      require: [product]
      strategy: least_loaded
    - key: credit
      priority: 10
      when: {product: [credit, deposit]}
      team: sales
      managers: [m01, m02, m04, m05, m06, m07]
      strategy: round_robin
  fallback: {team: sales, strategy: round_robin}
junk:
  own_domains: [leadflow-bank.ua]
  keywords: [test lead, тестова заявка, casino]
  blocked_sources: [spam-partner]
  no_contact: junk
dedupe: {company_similarity: 90}
"""


def rules_text(notify: bool, match_accounts: bool = False) -> str:
    """One team of ten, two rules and a fallback; with `notify`, every manager has a Telegram chat to be told in;
    with `match_accounts`, the team matches leads to the accounts of other people of their company."""
    lines = []
    for i, (key, name, products, languages, extra) in enumerate(MANAGERS):
        chat = f", telegram_chat_id: '{100_000 + i}'" if notify else ""
        lines.append(f"  - {{key: {key}, name: {name}, team: sales, products: [{products}], regions: [UA], "
                     f"languages: [{languages}], capacity: 20000{chat}{extra}}}")  # fmt: skip
    head = (
        RULES_HEAD.replace("hours: always}", "hours: always, match_accounts: true}") if match_accounts else RULES_HEAD
    )
    return head + "\n".join(lines) + RULES_TAIL


# --- deterministic data ---------------------------------------------------------------------------------------------

OPERATORS = ("67", "68", "96", "97", "98", "50", "66", "95", "99", "63", "73", "93")  # Kyivstar, Vodafone, lifecell
FIRST = (
    "Олександр", "Андрій", "Іван", "Дмитро", "Сергій", "Максим", "Тарас", "Богдан", "Юрій", "Володимир",
    "Олена", "Ірина", "Наталія", "Оксана", "Тетяна", "Марія", "Юлія", "Анна", "Катерина", "Світлана",
    "Христина", "Софія", "Вікторія", "Олег", "Петро", "Микола", "Роман", "Василь", "Галина", "Людмила",
)  # fmt: skip
LAST = (
    "Шевченко", "Коваленко", "Бондаренко", "Ткаченко", "Кравченко", "Олійник", "Шевчук", "Поліщук", "Бойко",
    "Ткачук", "Мельник", "Коваль", "Лисенко", "Марченко", "Руденко", "Савченко", "Петренко", "Кузьменко",
    "Павленко", "Мороз", "Гончаренко", "Романенко", "Литвиненко", "Кравчук", "Левченко", "Остапенко",
    "Гриценко", "Савчук", "Карпенко", "Дорошенко",
)  # fmt: skip
MAIL_DOMAINS = ("gmail.com", "ukr.net", "i.ua", "meta.ua", "outlook.com", "icloud.com")
COMPANY_ROOTS = (
    "Агро", "Буд", "Енерго", "Тех", "Дніпро", "Київ", "Зерно", "Мет", "Транс", "Фарм", "Авто", "Еко", "Газ",
    "Світ", "Укр", "Хліб", "Сад", "Карпат", "Поділ", "Альфа", "Дельта", "Вектор", "Граніт", "Полісс", "Нива",
)  # fmt: skip
COMPANY_TAILS = (
    "трейд", "сервіс", "пром", "інвест", "лайн", "груп", "систем", "буд", "постач", "маркет", "торг", "експорт",
    "логістик", "проект", "плюс", "центр", "капітал", "агро", "тех", "комплект",
)  # fmt: skip
LEGAL = ("ТОВ", "ТОВ", "ТОВ", "ПП", "ФОП", "ПрАТ", "АТ")
CONSONANTS = "бвгджзклмнпрстфхчш"
VOWELS = "аеиоуяюіє"
_TRANSLIT = dict(zip("абвгґдезиіїйклмнопрстуф", "abvhgdezyiiiklmnoprstuf", strict=True)) | {
    "є": "ie", "ж": "zh", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ю": "iu", "я": "ia",
    "ь": "", "'": "",
}  # fmt: skip
SOURCES = ("landing-credit", "landing-leasing", "google-ads", "facebook-form", "partner-finmarket", "organic")
PRODUCTS = (("credit", 0.45), ("leasing", 0.25), ("deposit", 0.10), (None, 0.20))


def translit(word: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in word.lower())


def local_format(e164: str, style: int) -> str:
    """+380671234567 written as people write it."""
    op, sub = e164[4:6], e164[6:]
    a, b, c = sub[:3], sub[3:5], sub[5:]
    return (
        f"0{op} {a} {b} {c}",
        f"0{op}{sub}",
        f"(0{op}) {a}-{b}-{c}",
        f"+380 {op} {a} {b} {c}",
        f"380{op}{sub}",
        f"+38 (0{op}) {a} {b} {c}",
    )[style]


@dataclass(frozen=True, slots=True)
class LeadCase:
    kind: str  # new, duplicate, repeat, company, junk
    data: dict[str, Any]  # the JSON body a channel would send
    now: datetime
    idempotency_key: str | None


@dataclass
class DataGen:
    """Seeded generator of contacts, companies and inbound leads; the same seed gives the same data."""

    seed: int
    rng: random.Random = field(init=False)
    phones: set[str] = field(default_factory=set)
    contacts: list[tuple[str | None, str | None]] = field(default_factory=list)  # (phone, email) in insert order
    companies: list[str] = field(default_factory=list)  # names in insert order (id = index + 1)
    _company_keys: set[str] = field(default_factory=set)
    _mail_n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def new_phone(self) -> str:
        while True:
            phone = f"+380{self.rng.choice(OPERATORS)}{self.rng.randrange(10**7):07d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def person(self) -> tuple[str, str]:
        return self.rng.choice(FIRST), self.rng.choice(LAST)

    def new_email(self, first: str, last: str, domain: str | None = None) -> str:
        self._mail_n += 1
        n, f, la = self._mail_n, translit(first), translit(last)
        local = (f"{f}.{la}{n}", f"{f[0]}{la}{n}", f"{la}_{f}{n}", f"{f}{n}")[self.rng.randrange(4)]
        return f"{local}@{domain or self.rng.choice(MAIL_DOMAINS)}"

    def _word(self) -> str:
        syllables = self.rng.randint(2, 3)
        word = "".join(self.rng.choice(CONSONANTS) + self.rng.choice(VOWELS) for _ in range(syllables))
        return word.capitalize()

    def company_name(self) -> str:
        rng = self.rng
        root = rng.choice(COMPANY_ROOTS) if rng.random() < 0.35 else self._word()
        tail = rng.choice(COMPANY_TAILS)
        legal = rng.choice(LEGAL)
        style = rng.random()
        if style < 0.15:
            return f"{translit(root + tail).capitalize()} {rng.choice(('LLC', 'Ltd', 'Group'))}"
        if style < 0.55:
            return f"{legal} «{root}{tail}»"
        if style < 0.8:
            return f"{root}-{tail.capitalize()} {legal}"
        return f'{legal} "{root} {tail.capitalize()}"'

    def company_rows(self, count: int, owner_ids: Sequence[int]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < count:
            name = self.company_name()
            key = company_key(name)
            if not key or key in self._company_keys:
                continue
            self._company_keys.add(key)
            self.companies.append(name)
            rows.append({
                "name": name, "name_key": key, "block_key": company_block(key),
                "owner_id": self.rng.choice(owner_ids), "created_at": BASE_CREATED,
            })  # fmt: skip
        return rows

    def contact_rows(self, count: int, owner_ids: Sequence[int]) -> list[dict[str, Any]]:
        rng, rows = self.rng, []
        for _ in range(count):
            first, last = self.person()
            phone = self.new_phone() if rng.random() < 0.92 else None
            email = self.new_email(first, last) if phone is None or rng.random() < 0.6 else None
            self.contacts.append((phone, email))
            rows.append({
                "name": f"{first} {last}", "phone": phone, "email": email,
                "company_id": rng.randint(1, len(self.companies)) if self.companies and rng.random() < 0.3 else None,
                "owner_id": rng.choice(owner_ids) if rng.random() < 0.95 else None,
                "created_at": BASE_CREATED - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)),
            })  # fmt: skip
        return rows

    def company_variant(self, name: str) -> str:
        """The same company as a person types it: other layout, quotes, case, legal form; now and then a typo."""
        words = company_key(name).split()
        r = self.rng.random()
        if r < 0.4:
            return " ".join(w.capitalize() for w in words) + " ТОВ"
        if r < 0.65:
            return f'ТОВ "{" ".join(words).upper()}"'
        if r < 0.85:
            return name
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        w = words[longest]
        if len(w) > 5:
            cut = self.rng.randrange(1, len(w) - 1)
            words[longest] = w[:cut] + w[cut + 1 :]
        return " ".join(words).capitalize()

    def leads(self, count: int) -> list[LeadCase]:
        """~10% duplicates of contacts, ~2% repeats of this run's leads, ~8% known companies, ~3% junk."""
        rng = self.rng
        known = [(p, e) for p, e in self.contacts if p]
        cases: list[LeadCase] = []
        earlier: list[tuple[str, str | None]] = []
        for i in range(count):
            data: dict[str, Any] = {}
            channel_pick = rng.random()
            key: str | None = None
            if channel_pick < 0.55:
                data["channel"] = "web"
                key = f"form-{SEED}-{i:07d}"
            elif channel_pick < 0.75:
                data |= {"channel": "facebook", "external_id": f"fb-{i:07d}"}
            elif channel_pick < 0.85:
                data |= {"channel": "telegram", "external_id": f"tg-{i:07d}"}
            else:
                data["channel"] = "call"
            first, last = self.person()
            if rng.random() < 0.9:
                data["name"] = f"{first} {last}"
            product = rng.choices([p for p, _ in PRODUCTS], [w for _, w in PRODUCTS])[0]
            if product:
                data["product"] = product
            data["source"] = rng.choice(SOURCES)
            if rng.random() < 0.8:
                data["language"] = rng.choice(("uk", "uk", "uk", "ru", "en"))
            if rng.random() < 0.2:
                data["budget"] = rng.randrange(5, 500) * 1000
            if rng.random() < 0.3:
                data["message"] = rng.choice(("Передзвоніть, будь ласка", "Цікавить лізинг авто", "Хочу кредит"))
            if data["channel"] == "web":
                data |= {"utm_source": rng.choice(("google", "facebook", "email")), "utm_medium": "cpc",
                         "utm_campaign": f"nov-{rng.randrange(5)}"}  # fmt: skip

            r = rng.random()
            if r < 0.03:
                kind = "junk"
                junk = rng.randrange(4)
                if junk == 0:
                    data |= {"source": "spam-partner", "phone": local_format(self.new_phone(), 1)}
                elif junk == 1:
                    data["email"] = self.new_email(first, last, "leadflow-bank.ua")
                elif junk == 2:
                    data |= {"message": "test lead, please ignore", "phone": local_format(self.new_phone(), 0)}
                else:  # a name and nothing to reach them by
                    data.pop("phone", None)
                    data["name"] = f"{first} {last}"
            elif r < 0.13:
                kind = "duplicate"
                phone, email = rng.choice(known)
                assert phone is not None
                data["phone"] = local_format(phone, 0 if rng.random() < 0.7 else rng.randrange(6))
                if email and rng.random() < 0.4:
                    data["email"] = email.capitalize()
            elif r < 0.15 and earlier:
                kind = "repeat"
                phone, email = rng.choice(earlier)
                data["phone"] = local_format(phone, rng.randrange(6))
                if email:
                    data["email"] = email.upper()
            elif r < 0.23:
                kind = "company"
                data["company"] = self.company_variant(rng.choice(self.companies))
                data["phone"] = local_format(self.new_phone(), rng.randrange(6))
            else:
                kind = "new"
                phone = self.new_phone()
                data["phone"] = local_format(phone, rng.randrange(6))
                email = self.new_email(first, last) if rng.random() < 0.5 else None
                if email:
                    data["email"] = email
                if rng.random() < 0.12:
                    data["company"] = self.company_name()
                earlier.append((phone, email))
            cases.append(LeadCase(kind, data, START + timedelta(seconds=i), key))
        return cases


def fill_base(engine: Engine, gen: DataGen, owner_ids: Sequence[int], n_contacts: int, n_companies: int) -> None:
    """Add companies, then contacts, in one transaction (executemany, in chunks to bound memory)."""
    with engine.begin() as conn:
        if n_companies:
            conn.execute(companies.insert(), gen.company_rows(n_companies, owner_ids))
        left = n_contacts
        while left:
            chunk = min(left, 20_000)
            conn.execute(contacts.insert(), gen.contact_rows(chunk, owner_ids))
            left -= chunk


def fill_open_leads(engine: Engine, gen: DataGen, owner_ids: Sequence[int], count: int) -> None:
    """Open leads already in the base, so the look-ups on leads.phone / leads.email meet real index entries."""
    rows: list[dict[str, Any]] = []
    for _ in range(count):
        first, last = gen.person()
        rows.append({
            "channel": "web", "name": f"{first} {last}", "phone": gen.new_phone(),
            "email": gen.new_email(first, last) if gen.rng.random() < 0.5 else None,
            "utm": {}, "raw": {}, "status": gen.rng.choice(("new", "assigned", "contacted", "qualified")),
            "manager_id": gen.rng.choice(owner_ids), "created_at": BASE_CREATED, "updated_at": BASE_CREATED,
        })  # fmt: skip
    if rows:
        with engine.begin() as conn:
            conn.execute(leads.insert(), rows)


# --- measured phases ------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    def figures(self) -> dict[str, float]:
        return {"leads": self.count, "seconds": round(self.seconds, 4), "leads_per_s": round(self.rate, 1),
                "p50_ms": round(self.p50_ms, 4), "p99_ms": round(self.p99_ms, 4)}  # fmt: skip


def timed_loop(
    label: str, items: Sequence[T], warmup: int, one: Callable[[T], object], profiler: cProfile.Profile | None = None
) -> Phase:
    """Run the first `warmup` items untimed, then time each of the rest and the whole loop."""
    for item in items[:warmup]:
        one(item)
    gc.collect()
    measured = items[warmup:]
    latencies = [0.0] * len(measured)
    clock = time.perf_counter
    if profiler:
        profiler.enable()
    started = clock()
    for i, item in enumerate(measured):
        t0 = clock()
        one(item)
        latencies[i] = clock() - t0
    seconds = clock() - started
    if profiler:
        profiler.disable()
    return Phase(label, len(measured), seconds, latencies)


def run_full_path(
    engine: Engine,
    rules: RulesFile,
    cases: Sequence[LeadCase],
    warmup: int,
    profiler: cProfile.Profile | None = None,
    capture: Capture | None = None,
) -> Phase:
    app = serving_app(engine, rules)

    def one(case: LeadCase) -> None:
        if capture is not None:
            capture.next_lead()
        receive(app, case.data, case.now, idempotency_key=case.idempotency_key)  # what the HTTP layer calls

    try:
        return timed_loop("full path", cases, warmup, one, profiler)
    finally:
        if app.writer is not None:
            app.writer.close()


def serving_app(engine: Engine, rules: RulesFile) -> Leadflow:
    """The Leadflow `leadflow serve` builds (the win-probability step, SQLite's group writer), on the bench's
    engine and rules (tests/test_bench_config.py holds the two to the same configuration)."""
    return assemble(engine, rules, Settings(), serving=True)


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: Any  # exactly what the driver was given: a tuple or dict, or a list of them for executemany
    many: bool
    returns: bool  # has RETURNING: the replay fetches its rows, as the full path does

    @property
    def kind(self) -> str:
        """'INSERT leads', 'UPDATE managers', 'UPSERT rr_pointers', ..."""
        words = self.sql.split()
        verb = words[0].upper()
        table = (words[2] if verb in ("INSERT", "DELETE") else words[1]).strip('"')
        if verb == "INSERT" and "ON CONFLICT" in self.sql.upper():
            verb = "UPSERT"
        return f"{verb} {table}"


@dataclass(frozen=True, slots=True)
class Unit:
    """Every write statement the full path sent for one lead: replayed by the bare driver as one transaction."""

    statements: tuple[Statement, ...]

    @property
    def lead_insert(self) -> Statement:
        return next(s for s in self.statements if s.kind == "INSERT leads")


class Capture:
    """Record the INSERT / UPDATE / DELETE statements and parameters the engine hands to the driver, per lead."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.leads: list[list[Statement]] = []
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def next_lead(self) -> None:
        self.leads.append([])

    def _on_execute(self, _conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, many: bool) -> None:
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            kept = list(params) if many else params
            self.leads[-1].append(Statement(sql.strip(), kept, many, "RETURNING" in sql.upper()))

    def units(self) -> list[Unit]:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)
        return [Unit(tuple(statements)) for statements in self.leads]


def _json_columns(table: Table) -> set[str]:
    return {c.name for c in table.columns if isinstance(c.type, JSON)}


class Backend:
    """One database kind: fresh databases, the bare-driver baseline, plan output."""

    name = ""
    placeholder = "?"

    def new_database(self, label: str) -> str:
        raise NotImplementedError

    def engine(self, url: str) -> Engine:
        raise NotImplementedError

    def seal(self, url: str) -> None:
        """Make a filled database ready to be copied."""

    def copy(self, template_url: str, label: str) -> str:
        raise NotImplementedError

    def discard(self, url: str) -> None:
        raise NotImplementedError

    def rows(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def replay(self, url: str, units: Sequence[Unit], warmup: int, lead_only: bool) -> Phase:
        raise NotImplementedError

    def explain(self, conn: Connection, statement: str, params: Any) -> list[str]:
        raise NotImplementedError

    def scanned(self, plan: Iterable[str]) -> list[str]:
        raise NotImplementedError

    # shared

    def select_list(self, table: Table, cols: Sequence[str]) -> str:
        return ", ".join(f'"{c}"' for c in cols)

    def counts(self, url: str) -> dict[str, int]:
        return {t.name: int(self.rows(url, f"SELECT count(*) FROM {t.name}")[0][0]) for t in metadata.sorted_tables}

    def digest(self, url: str) -> dict[str, str]:
        """A hash of each table; equal digests mean the baseline left the database exactly as the full path did."""
        out = {}
        for table in metadata.sorted_tables:
            h = hashlib.sha256()
            cols = [c.name for c in table.columns]
            order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            for row in self.rows(url, f"SELECT {self.select_list(table, cols)} FROM {table.name} ORDER BY {order}"):
                h.update(repr(row).encode())
            out[table.name] = h.hexdigest()[:16]
        return out


class SqliteBackend(Backend):
    name = "sqlite"
    placeholder = "?"

    def __init__(self, root: Path, synchronous: str) -> None:
        self.root = root
        self.synchronous = synchronous

    @staticmethod
    def path(url: str) -> Path:
        return Path(url.removeprefix("sqlite:///"))

    def new_database(self, label: str) -> str:
        url = f"sqlite:///{self.root / f'{label}.db'}"
        migrate(url)
        return url

    def engine(self, url: str) -> Engine:
        return make_engine(url, sqlite_synchronous=self.synchronous)

    def seal(self, url: str) -> None:
        sqlite_checkpoint(self.path(url))

    def copy(self, template_url: str, label: str) -> str:
        target = self.root / f"{label}.db"
        shutil.copyfile(self.path(template_url), target)
        return f"sqlite:///{target}"

    def discard(self, url: str) -> None:
        path = self.path(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def rows(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path(url))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def replay(self, url: str, units: Sequence[Unit], warmup: int, lead_only: bool) -> Phase:
        conn = sqlite_connect(self.path(url), self.synchronous)
        cur = conn.cursor()
        execute, executemany, fetchall = cur.execute, cur.executemany, cur.fetchall
        work = [(u.lead_insert,) if lead_only else u.statements for u in units]

        def one(statements: tuple[Statement, ...]) -> None:
            execute("BEGIN IMMEDIATE")
            for s in statements:
                if s.many:
                    executemany(s.sql, s.params)
                else:
                    execute(s.sql, s.params)
                    if s.returns:
                        fetchall()
            execute("COMMIT")

        try:
            return timed_loop("raw lead row" if lead_only else "raw same rows", work, warmup, one)
        finally:
            conn.close()

    def explain(self, conn: Connection, statement: str, params: Any) -> list[str]:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + str(detail))
        return lines

    def scanned(self, plan: Iterable[str]) -> list[str]:
        bases = ("contacts", "leads", "companies")
        return [line.strip() for line in plan if line.strip().startswith(tuple(f"SCAN {t}" for t in bases))]


class PostgresBackend(Backend):
    name = "postgresql"
    placeholder = "%s"

    def __init__(self, scratch: PostgresScratch) -> None:
        self.scratch = scratch

    def new_database(self, label: str) -> str:
        _, url = self.scratch.create(label)
        migrate(url)
        return url

    def engine(self, url: str) -> Engine:
        return make_engine(url)

    def seal(self, url: str) -> None:
        """Gather planner statistics (autovacuum would, after a bulk load); copies made from it keep them."""
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("ANALYZE")

    def copy(self, template_url: str, label: str) -> str:
        _, url = self.scratch.create(label, template=make_url(template_url).database)
        return url

    def discard(self, url: str) -> None:
        name = make_url(url).database
        assert name
        self.scratch.drop(name)

    def select_list(self, table: Table, cols: Sequence[str]) -> str:
        json_cols = _json_columns(table)
        return ", ".join(f'"{c}"::text' if c in json_cols else f'"{c}"' for c in cols)

    def rows(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(libpq_url(url)) as conn:
            return conn.execute(sql).fetchall()

    def replay(self, url: str, units: Sequence[Unit], warmup: int, lead_only: bool) -> Phase:
        conn = psycopg.connect(libpq_url(url))
        # The JSON parameters captured are psycopg's Json wrappers, encoded when sent: with leadflow's encoder, as
        # its engine sets it on every connection.
        set_json_dumps(dumps_json, conn)
        cur = conn.cursor()
        execute, executemany, fetchall, commit = cur.execute, cur.executemany, cur.fetchall, conn.commit
        work = [(u.lead_insert,) if lead_only else u.statements for u in units]

        def one(statements: tuple[Statement, ...]) -> None:
            # psycopg opens the transaction (BEGIN) with the first statement; commit() ends it.
            for s in statements:
                if s.many:
                    executemany(s.sql, s.params)
                else:
                    execute(s.sql, s.params)
                    if s.returns:
                        fetchall()
            commit()

        try:
            return timed_loop("raw lead row" if lead_only else "raw same rows", work, warmup, one)
        finally:
            conn.close()

    def explain(self, conn: Connection, statement: str, params: Any) -> list[str]:
        return [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, params).all()]

    def scanned(self, plan: Iterable[str]) -> list[str]:
        return [
            line.strip()
            for line in plan
            if "Seq Scan on " in line and line.split("Seq Scan on ")[1].split()[0] in ("contacts", "leads", "companies")
        ]


# --- dedupe scaling -------------------------------------------------------------------------------------------------


_BLOCK_SIZES = """
SELECT count(*) * 1.0 / count(DISTINCT block_key),
       (SELECT max(n) FROM (SELECT count(*) AS n FROM companies GROUP BY block_key) AS b)
FROM companies
"""


@dataclass
class Probes:
    hit: list[CleanLead]  # phone (local form) + e-mail of an existing contact
    miss: list[CleanLead]  # phone + e-mail nobody has
    company: list[CleanLead]  # new phone + a known company's name as people type it


def make_probes(gen: DataGen, count: int, region: str) -> Probes:
    rng = gen.rng
    with_both = [(p, e) for p, e in gen.contacts if p and e]
    hit = [LeadIn(phone=local_format(p, 0), email=e) for p, e in rng.sample(with_both, min(count, len(with_both)))]
    miss = []
    for _ in range(count):
        first, last = gen.person()
        miss.append(LeadIn(phone=local_format(gen.new_phone(), 0), email=gen.new_email(first, last)))
    company = [
        LeadIn(phone=local_format(gen.new_phone(), 0), company=gen.company_variant(rng.choice(gen.companies)))
        for _ in range(count)
    ]
    return Probes(*([clean_lead(x, region) for x in group] for group in (hit, miss, company)))


def time_lookups(engine: Engine, rules: RulesFile, probes: Sequence[CleanLead], rounds: int) -> tuple[float, float]:
    """Median and p99 microseconds of one find_matches call, median over rounds (after one warm round)."""
    medians, p99s = [], []
    open_statuses, similarity = rules.open_statuses, rules.dedupe.company_similarity
    clock = time.perf_counter
    with engine.connect() as conn:
        for r in range(rounds + 1):
            times = []
            for probe in probes:
                t0 = clock()
                find_matches(conn, probe, open_statuses, similarity)
                times.append(clock() - t0)
            if r:
                medians.append(percentile(times, 50) * 1e6)
                p99s.append(percentile(times, 99) * 1e6)
    return median(medians), median(p99s)


def dedupe_scaling(
    backend: Backend, rules: RulesFile, sizes: Sequence[int], probe_count: int, rounds: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """find_matches alone at growing base sizes in one database; plus the query plans at the largest size."""
    url = backend.new_database("scaling")
    engine = backend.engine(url)
    with engine.begin() as conn:
        owner_ids = list(apply_rules_people(conn, rules, BASE_CREATED).values())
    gen = DataGen(SEED + 1)
    results, probes, have = [], None, 0
    try:
        for size in sorted(sizes):
            fill_base(engine, gen, owner_ids, size - have, size // 10 - have // 10)
            fill_open_leads(engine, gen, owner_ids, size // 20 - have // 20)
            have = size
            if backend.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("ANALYZE"))
            if probes is None:  # drawn from the smallest base, so hits are hits at every size
                probes = make_probes(gen, probe_count, rules.default_region)
            with engine.connect() as conn:
                per_block = conn.execute(text(_BLOCK_SIZES)).one()
            row: dict[str, Any] = {"contacts": size, "companies": size // 10, "open_leads": size // 20,
                                   "companies_per_block_avg": round(float(per_block[0]), 1),
                                   "companies_per_block_max": int(per_block[1])}  # fmt: skip
            for name in ("hit", "miss", "company"):
                p50, p99 = time_lookups(engine, rules, getattr(probes, name), rounds)
                row[f"{name}_p50_us"], row[f"{name}_p99_us"] = round(p50, 1), round(p99, 1)
            results.append(row)
            timings = ", ".join(f"{k} {row[f'{k}_p50_us']:.0f} µs" for k in ("hit", "miss", "company"))
            console.print(f"  [dim]dedupe at {size:,} contacts: {timings}[/dim]")
        assert probes is not None
        plans = explain_find_matches(backend, engine, rules, probes.company[0], probes.hit[0])
    finally:
        engine.dispose()
        backend.discard(url)
    return results, plans


def explain_find_matches(
    backend: Backend, engine: Engine, rules: RulesFile, with_company: CleanLead, hit: CleanLead
) -> list[dict[str, Any]]:
    """The plans of exactly the statements find_matches sends, captured from the driver calls."""
    probe = CleanLead(channel="web", phone=hit.phone, email=hit.email, company=with_company.company,
                      company_key=with_company.company_key)  # fmt: skip
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not the BEGIN the engine sends
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            find_matches(conn, probe, rules.open_statuses, rules.dedupe.company_similarity)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        for statement, params in captured:
            plan = backend.explain(conn, statement, params)
            plans.append({"statement": " ".join(statement.split()), "plan": plan, "scans": backend.scanned(plan)})
    return plans


# --- profile --------------------------------------------------------------------------------------------------------


def _group_of(filename: str, func: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/leadflow/" in filename:
        return "leadflow"
    if filename == "~":
        if "sqlite3" in func:
            return "sqlite3 (C)"
        if "psycopg" in func:
            return "psycopg (C)"
        return "builtins (C)"
    return "stdlib"


def profile_summary(profiler: cProfile.Profile, top: int) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    groups: Counter[str] = Counter()
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        groups[_group_of(filename, func)] += tottime
    by_self = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    by_cum = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)
    leadflow_cum = [kv for kv in by_cum if "/leadflow/" in kv[0][0]][:top]

    def name(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        return f"{short}:{line}({func})" if filename != "~" else func

    return {
        "total_s": total,
        "groups": [(g, t, t / total) for g, t in groups.most_common()],
        "self": [(name(k), v[2], v[2] / total, v[1]) for k, v in by_self],
        "leadflow_cumulative": [(name(k), v[3], v[3] / total, v[1]) for k, v in leadflow_cum],
    }


def print_profile(summary: dict[str, Any], leads_count: int) -> None:
    per = 1e6 / leads_count
    print_table(
        f"Profile of the full path: where self time goes ({summary['total_s']:.2f} s profiled, µs per lead)",
        ["group", "µs/lead", "share"],
        [(g, f"{t * per:,.0f}", f"{s:.0%}") for g, t, s in summary["groups"]],
    )
    print_table("Top functions by self time", ["function", "µs/lead", "share", "calls"],
                [(n, f"{t * per:,.1f}", f"{s:.1%}", f"{c:,}") for n, t, s, c in summary["self"]])  # fmt: skip
    rows = [(n, f"{t * per:,.0f}", f"{s:.0%}", f"{c:,}") for n, t, s, c in summary["leadflow_cumulative"]]
    print_table("leadflow functions by cumulative time", ["function", "µs/lead", "share", "calls"], rows)


# --- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--leads", type=int, default=5000, help="measured leads per run (default 5000)")
    p.add_argument("--warmup", type=int, default=100, help="leads run first, untimed, on every side (default 100)")
    p.add_argument("--contacts", type=int, default=100_000, help="contacts in the base (default 100000)")
    p.add_argument("--companies", type=int, default=None, help="companies in the base (default contacts / 10)")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server and maintenance database for --database postgresql")
    p.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL", help="SQLite synchronous, both sides")
    p.add_argument("--notify", action="store_true", help="managers have Telegram chats: intake queues notifications")
    p.add_argument("--match-accounts", action="store_true", help="the team matches leads to company accounts")
    p.add_argument("--repeat", type=int, default=3, help="runs of each side; medians are reported (default 3)")
    p.add_argument("--scaling", default="10000,100000,300000", help="base sizes for the dedupe look-up; '' skips")
    p.add_argument("--probes", type=int, default=300, help="look-ups of each kind per base size (default 300)")
    p.add_argument("--profile", action="store_true", help="profile one more full-path run and print where time goes")
    p.add_argument("--profile-out", type=Path, help="also save the profile (pstats) to this file")
    p.add_argument("--dir", type=Path, default=None, help="directory for the SQLite files (default: system temp)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.leads < 1 or args.repeat < 1 or args.warmup < 0 or args.contacts < 1:
        p.error("--leads, --repeat and --contacts must be at least 1, --warmup at least 0")
    if args.companies is None:
        args.companies = args.contacts // 10
    return args


def run(args: argparse.Namespace, backend: Backend, info: dict[str, Any]) -> dict[str, Any]:
    rules = parse_rules(rules_text(args.notify, args.match_accounts), "bench-rules.yaml")
    started = time.perf_counter()
    console.print(f"[bold]leadflow intake benchmark[/bold] on {backend.name}: {args.leads:,} leads (+{args.warmup} "
                  f"warm-up), base of {args.contacts:,} contacts / {args.companies:,} companies, "
                  f"{args.repeat} runs")  # fmt: skip

    template = backend.new_database("template")
    engine = backend.engine(template)
    with engine.begin() as conn:
        owner_ids = list(apply_rules_people(conn, rules, BASE_CREATED).values())
    gen = DataGen(SEED)
    t0 = time.perf_counter()
    fill_base(engine, gen, owner_ids, args.contacts, args.companies)
    fill_seconds = time.perf_counter() - t0
    engine.dispose()
    backend.seal(template)
    template_counts = backend.counts(template)
    cases = gen.leads(args.warmup + args.leads)
    mix = Counter(c.kind for c in cases[args.warmup :])
    console.print(f"  [dim]base filled in {fill_seconds:.1f} s; lead mix: "
                  f"{', '.join(f'{k} {v}' for k, v in mix.most_common())}[/dim]")  # fmt: skip

    # One untimed pass records every write statement the full path sends, for the bare driver to replay.
    url = backend.copy(template, "capture")
    engine = backend.engine(url)
    capture = Capture(engine)
    try:
        run_full_path(engine, rules, cases, 0, capture=capture)
    finally:
        engine.dispose()
    units = capture.units()
    expected_digest = backend.digest(url)
    outcome = describe_outcome(backend, url)
    added = {t: n - template_counts[t] for t, n in backend.counts(url).items() if n != template_counts[t]}
    backend.discard(url)

    runs: list[dict[str, Phase]] = []
    sides = ["full", "raw", "lead_only"]
    for r in range(args.repeat):
        phases: dict[str, Phase] = {}
        for side in sides[r % 3 :] + sides[: r % 3]:  # rotate the order so drift on a noisy machine spreads out
            url = backend.copy(template, f"{side}_{r}")
            try:
                if side == "full":
                    engine = backend.engine(url)
                    try:
                        phases[side] = run_full_path(engine, rules, cases, args.warmup)
                    finally:
                        engine.dispose()
                    if (digest := backend.digest(url)) != expected_digest:
                        raise RuntimeError(
                            f"the full path wrote other rows than before: {_differ(digest, expected_digest)}"
                        )
                else:
                    phases[side] = backend.replay(url, units, args.warmup, lead_only=side == "lead_only")
                    if side == "raw" and (digest := backend.digest(url)) != expected_digest:
                        raise RuntimeError(
                            f"the raw baseline did not leave the same rows: {_differ(digest, expected_digest)}"
                        )
            finally:
                backend.discard(url)
        runs.append(phases)
        console.print("  [dim]run {}: full {:,.0f}/s, raw same rows {:,.0f}/s, raw lead row {:,.0f}/s[/dim]".format(
            r + 1, phases["full"].rate, phases["raw"].rate, phases["lead_only"].rate))  # fmt: skip

    profile = None
    if args.profile:
        url = backend.copy(template, "profile")
        engine = backend.engine(url)
        profiler = cProfile.Profile()
        try:
            profiled = run_full_path(engine, rules, cases, args.warmup, profiler)
        finally:
            engine.dispose()
            backend.discard(url)
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        profile = profile_summary(profiler, 25)
        profile["leads"] = profiled.count
        profile["leads_per_s_under_profiler"] = round(profiled.rate, 1)
    backend.discard(template)

    scaling: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    sizes = [int(s) for s in args.scaling.split(",") if s.strip()]
    if sizes:
        scaling, plans = dedupe_scaling(backend, rules, sizes, args.probes, rounds=3)

    statements: Counter[str] = Counter()
    for u in units:
        statements.update(s.kind for s in u.statements)
    n = len(units)
    rows_per_lead = {t: k / n for t, k in sorted(added.items(), key=lambda kv: -kv[1])}
    statements_per_lead = {k: v / n for k, v in statements.most_common()}
    return {
        "machine": info,
        "settings": {
            "database": backend.name, "leads": args.leads, "warmup": args.warmup, "contacts": args.contacts,
            "companies": args.companies, "repeat": args.repeat, "seed": SEED,
            "sqlite_synchronous": args.synchronous if backend.name == "sqlite" else None, "notify": args.notify, "match_accounts": args.match_accounts,
        },
        "lead_mix": dict(mix),
        "outcome": outcome,
        "rows_per_lead": {k: round(v, 3) for k, v in rows_per_lead.items()},
        "statements_per_lead": {k: round(v, 3) for k, v in statements_per_lead.items()},
        "runs": [{side: phase.figures() for side, phase in phases.items()} for phases in runs],
        "summary": summarise(runs),
        "dedupe_scaling": scaling,
        "dedupe_plans": plans,
        "profile": profile,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def _differ(a: dict[str, str], b: dict[str, str]) -> str:
    return "tables " + ", ".join(sorted(t for t in a.keys() | b.keys() if a.get(t) != b.get(t)))


def describe_outcome(backend: Backend, url: str) -> dict[str, Any]:
    """What the full path decided for all leads (warm-up included), for the record."""
    status = dict(backend.rows(url, "SELECT status, count(*) FROM leads GROUP BY status ORDER BY status"))
    strategy = dict(backend.rows(url, "SELECT strategy, count(*) FROM assignments GROUP BY strategy ORDER BY 1"))
    dup = backend.rows(url, "SELECT count(*) FROM leads WHERE duplicate_reason IS NOT NULL")[0][0]
    return {"status": status, "assignment_strategy": strategy, "duplicates": dup}


def summarise(runs: Sequence[dict[str, Phase]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side in ("full", "raw", "lead_only"):
        summary[side] = {
            "leads_per_s": round(median([r[side].rate for r in runs]), 1),
            "leads_per_s_runs": [round(r[side].rate, 1) for r in runs],
            "p50_ms": round(median([r[side].p50_ms for r in runs]), 4),
            "p99_ms": round(median([r[side].p99_ms for r in runs]), 4),
        }
    for side in ("raw", "lead_only"):
        ratios = [r["full"].rate / r[side].rate for r in runs]  # within a run: same minute, same noise
        summary[f"ratio_full_to_{side}"] = round(median(ratios), 4)
        summary[f"ratio_full_to_{side}_runs"] = [round(x, 4) for x in ratios]
    summary["target_ratio"] = TARGET_RATIO
    summary["target_met"] = summary["ratio_full_to_raw"] >= TARGET_RATIO
    return summary


def report(result: dict[str, Any]) -> None:
    s, st = result["summary"], result["settings"]
    m = result["machine"]
    db = st["database"] + (f", WAL, synchronous={st['sqlite_synchronous']}" if st["sqlite_synchronous"] else "")
    labels = {"full": "full path (receive)", "raw": "raw driver, same rows", "lead_only": "raw driver, 1 lead row"}
    rows: list[tuple[str, ...]] = []
    for side in ("full", "raw", "lead_only"):
        f = s[side]
        ratio = "" if side == "full" else f"{s[f'ratio_full_to_{side}']:.1%}"
        rows.append((labels[side], f"{f['leads_per_s']:,.0f}", spread(f["leads_per_s_runs"]),
                     f"{f['p50_ms']:.3f}", f"{f['p99_ms']:.3f}", ratio))  # fmt: skip
    rpl = result["rows_per_lead"]
    server = f"PostgreSQL {m['postgresql']}" if st["database"] == "postgresql" else f"SQLite {m['sqlite']}"
    print_table(
        f"Intake, one transaction per lead: {db}; {st['leads']:,} leads, {st['contacts']:,} contacts; "
        f"median of {st['repeat']} runs",
        ["", "leads/s", "range", "p50 ms", "p99 ms", "full path / this"],
        rows,
        caption=(
            f"rows added per lead (both sides): {', '.join(f'{v:.2f} {k}' for k, v in rpl.items())}\n"
            f"write statements per lead (both sides): "
            f"{', '.join(f'{v:.2f} {k}' for k, v in result['statements_per_lead'].items())}\n"
            f"machine: {m['nproc']} cores ({m.get('cpu', '?')}), Python {m['python']}, {server}; "
            f"outcome: {result['outcome']}"
        ),
    )
    verdict = "met" if s["target_met"] else "NOT met"
    per_run = ", ".join(f"{x:.1%}" for x in s["ratio_full_to_raw_runs"])
    console.print(f"Target (full path >= {TARGET_RATIO:.0%} of raw same-rows rate): [bold]{verdict}[/bold] "
                  f"({s['ratio_full_to_raw']:.1%}; per run {per_run})")  # fmt: skip

    if result["dedupe_scaling"]:
        sc = result["dedupe_scaling"]
        columns = ["contacts", "companies", "open leads", "phone+email, found", "phone+email, none", "company name",
                   "companies/block"]  # fmt: skip
        scaling_rows = [
            (f"{r['contacts']:,}", f"{r['companies']:,}", f"{r['open_leads']:,}",
             *(f"{r[f'{k}_p50_us']:.0f} ({r[f'{k}_p99_us']:.0f})" for k in ("hit", "miss", "company")),
             f"{r['companies_per_block_avg']:.1f} avg, {r['companies_per_block_max']} max")
            for r in sc
        ]  # fmt: skip
        print_table("Duplicate look-up alone (find_matches), µs per call, median (p99)", columns, scaling_rows)
        first, last = sc[0], sc[-1]
        growth = ", ".join(f"{k} x{last[f'{k}_p50_us'] / first[f'{k}_p50_us']:.2f}" for k in ("hit", "miss", "company"))
        console.print(f"{last['contacts'] // first['contacts']}x the base: {growth}")
        for p in result["dedupe_plans"]:
            console.print(f"\n[bold]plan[/bold] [dim]{p['statement'][:160]}...[/dim]")
            for line in p["plan"]:
                console.print("  " + line, markup=False)
            console.print("  -> " + ("[red]scans: " + "; ".join(p["scans"]) + "[/red]" if p["scans"] else "indexed"))
    if result["profile"]:
        print_profile(result["profile"], result["profile"]["leads"])
    console.print(f"\n[dim]{result['wall_seconds']} s in all[/dim]")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        info = machine_info(root if args.database == "sqlite" else None)
        if args.database == "sqlite":
            result = run(args, SqliteBackend(root, args.synchronous), info)
        else:
            with postgres_scratch(args.pg_url) as scratch:
                with psycopg.connect(libpq_url(args.pg_url)) as conn:
                    for setting in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
                        row = conn.execute(f"SHOW {setting}").fetchone()
                        info[f"postgresql_{setting}"] = row[0] if row else "?"
                info["postgresql"] = info.pop("postgresql_server_version")
                result = run(args, PostgresBackend(scratch), info)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        console.print(f"[dim]figures written to {args.json}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
