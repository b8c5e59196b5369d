"""Shared bench helpers: statistics, the machine's description, SQLite and PostgreSQL plumbing, tables."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = os.environ.get("LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# Wide enough for the tables when the output goes to a file or a pipe (rich would assume 80 columns).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)


# --- statistics ---------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float]) -> str:
    """min-max of repeated figures, to show how noisy the machine was."""
    if len(values) < 2:
        return ""
    return f"{min(values):,.0f}-{max(values):,.0f}"


# --- the machine ----------------------------------------------------------------------------------------------------


def machine_info(data_dir: Path | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["cpu"] = models[0]
    except OSError:
        pass
    if data_dir is not None:
        info["data_dir"] = str(data_dir)
        info["data_fs"] = filesystem_of(data_dir)
    return info


def filesystem_of(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True, timeout=5
        ).stdout.split()
        return out[-1] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# --- SQLite ---------------------------------------------------------------------------------------------------------


def sqlite_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A stdlib connection with the PRAGMAs leadflow's engine sets; transactions are explicit (BEGIN ... COMMIT)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def sqlite_checkpoint(path: Path) -> None:
    """Fold the WAL into the main file so that copying the main file alone copies the database."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


def libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://... as a plain libpq URL for psycopg.connect."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


class PostgresScratch:
    """Throwaway databases on one server: each created by name (optionally from a template), all dropped at close."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"leadflow_bench_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})

    def create(self, suffix: str, template: str | None = None) -> tuple[str, str]:
        """Create a database; return (its name, its SQLAlchemy URL)."""
        name = f"{self.prefix}_{suffix}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return name, with_database(self.admin_url, name)

    def drop(self, name: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(reversed(self.created)):
            self.drop(name)
        self._admin.dispose()


@contextmanager
def postgres_scratch(admin_url: str) -> Iterator[PostgresScratch]:
    scratch = PostgresScratch(admin_url)
    try:
        yield scratch
    finally:
        scratch.close()


# --- output ---------------------------------------------------------------------------------------------------------


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "") -> None:
    table = Table(title=title, caption=caption or None, title_justify="left", caption_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


# Six managers in one always-open team, round robin, a one-hour first contact: intake with nothing in its way.
SIX_MANAGERS_RULES = (
    """\
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, hours: always}
managers:
"""
    + "".join(f"  - {{key: m{i}, name: Manager {i}, team: sales, capacity: 100000}}\n" for i in range(6))
    + """\
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
sla:
  default: {first_contact: 1h, count: wall_clock}
"""
)
