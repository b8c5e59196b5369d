"""The mistakes a person makes on the command line, each told in one line: what went wrong and what to do.

`explain` turns an exception into that line, or returns None for a fault in leadflow itself (those keep their
traceback). The `leadflow` command wraps every command with it, so a new command gets the same answers.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from leadflow.core.errors import LeadflowError

__all__ = ["CommandError", "explain", "explain_validation"]

FIX_URL = "fix --database (or LEADFLOW_DATABASE_URL)"
URL_FORMS = "sqlite:///path/to/leadflow.db or postgresql+psycopg://user@host:5432/dbname"


class CommandError(LeadflowError):
    """A mistake on the command line, already worded for the person who made it."""


def explain(exc: BaseException, *, database_url: str | None = None, files: Sequence[Path] = ()) -> str | None:
    """One line for an error a person can fix; None for an error that is leadflow's own fault.

    `database_url` is the database the command was using and `files` the files it was given, so a message can
    name them when the exception does not.
    """
    if isinstance(exc, LeadflowError):  # RulesError, InvalidInput, NotFound, Conflict, DemoError, CommandError
        return _one_line(str(exc))
    if isinstance(exc, ValidationError):
        if exc.title == "Settings":
            return f"invalid settings: {explain_validation(exc, env_prefix='LEADFLOW_')}"
        return explain_validation(exc)
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return _bad_url(exc, database_url)
    if isinstance(exc, ImportError) and _foreign_driver(database_url):
        shown = _hide_password(database_url or "")
        return f"the database URL '{shown}' needs a driver leadflow does not ship: use {URL_FORMS}"
    if isinstance(exc, DBAPIError | sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
        return _database(exc, database_url)
    if type(exc).__module__.startswith("alembic"):
        return _one_line(f"cannot bring the database schema up to date: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return f"{_which(files)}is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{_which(files)}is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8"
    if isinstance(exc, csv.Error):
        return f"{_which(files)}cannot be read as CSV ({exc}): export it again with a header row"
    if isinstance(exc, OSError):
        return _file(exc)
    return None


def explain_validation(exc: ValidationError, *, env_prefix: str | None = None) -> str:
    """Every problem Pydantic found, on one line, each naming its field (or the variable that sets it)."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "json_invalid":
            parts.append(f"not valid JSON ({error.get('ctx', {}).get('error', message)})")
            continue
        if env_prefix is not None:
            field = env_prefix + "__".join(loc).upper() if loc else env_prefix.rstrip("_")
        else:
            field = ".".join(loc) or "the whole input"
        parts.append(f"{field}: {message}")
    return _one_line("; ".join(parts))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _which(files: Sequence[Path]) -> str:
    return f"{files[0]} " if len(files) == 1 else "the file "


def _file(exc: OSError) -> str:
    name = exc.filename
    if name is None:
        return _one_line(exc.strerror or str(exc))
    if isinstance(exc, FileNotFoundError):
        return f"{name} does not exist: check the path"
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a directory: give the path of a file"
    if isinstance(exc, PermissionError):
        return f"{name}: permission denied; check who may read and write it"
    return f"cannot use {name}: {exc.strerror or exc}"


def _bad_url(exc: Exception, url: str | None) -> str:
    shown = f"'{_hide_password(url)}' " if url else ""
    if isinstance(exc, NoSuchModuleError):
        return f"the database URL {shown}names a database leadflow does not speak: use {URL_FORMS}"
    return f"the database URL {shown}is not understood: use {URL_FORMS}"


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _foreign_driver(url: str | None) -> bool:
    parsed = _parse(url)
    return parsed is not None and parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def _parse(url: str | None) -> URL | None:
    try:
        return make_url(url) if url else None
    except ArgumentError:
        return None


def _database(exc: BaseException, url: str | None) -> str:
    driver_error = getattr(exc, "orig", None) or exc
    text = str(driver_error)
    parsed = _parse(url)
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        return _sqlite(text, parsed.database or "")
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}" if parsed is not None else "the server"
    user = parsed.username if parsed is not None else None
    if found := re.search(r'database "([^"]+)" does not exist', text):
        return f"database '{found[1]}' does not exist on {where}: create it (createdb {found[1]}) or {FIX_URL}"
    if found := re.search(r'role "([^"]+)" does not exist', text):
        return f"PostgreSQL on {where} has no user '{found[1]}': create the role or {FIX_URL}"
    if "password authentication failed" in text or "no password supplied" in text:
        return f"PostgreSQL on {where} refused the password of user '{user}': {FIX_URL}"
    if "failed to resolve host" in text or "could not translate host name" in text:
        host = parsed.host if parsed is not None else "the host"
        return f"the database host '{host}' is unknown: {FIX_URL}"
    if "Connection refused" in text or "No such file or directory" in text:
        return f"cannot reach PostgreSQL on {where} (connection refused): start the server or {FIX_URL}"
    if "timeout expired" in text or "timed out" in text:
        return f"PostgreSQL on {where} did not answer in time: check the server and the network, or {FIX_URL}"
    first = text.strip().splitlines()[0] if text.strip() else type(driver_error).__name__
    return _one_line(f"the database {_hide_password(url) if url else ''} failed: {first}")


def _sqlite(text: str, database: str) -> str:
    path = Path(database)
    if "unable to open database file" in text:
        parent = path.parent
        if not parent.is_dir():
            return (
                f"cannot create the SQLite database {path}: the directory {parent} does not exist; create it or "
                + FIX_URL
            )
        if path.is_dir():
            return f"cannot open the SQLite database {path}: it is a directory; {FIX_URL}"
        if not os.access(parent, os.W_OK):
            return f"cannot write the SQLite database {path}: the directory {parent} is not writable; {FIX_URL}"
        return f"cannot open the SQLite database {path}: {FIX_URL}"
    if "readonly database" in text or "read-only" in text:
        return f"the SQLite database {path} is read-only: let leadflow write to it and its directory, or {FIX_URL}"
    if "file is not a database" in text:
        return f"{path} is not a SQLite database: {FIX_URL}"
    if "database is locked" in text:
        return f"the SQLite database {path} is locked by another process: try again when it is done"
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return _one_line(f"the SQLite database {path} failed: {first}")
