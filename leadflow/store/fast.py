"""Hot-path statements sent straight to the driver's cursor, inside the SQLAlchemy connection's transaction.

Through `Connection.execute` a statement costs 15-40 µs of Python (execution context, events, result wrapping)
against 1-3 µs for the driver itself, and taking a lead sends about ten. The statements here are still written
and compiled by SQLAlchemy — once per dialect and set of parameter names — and their parameters and results go
through the same type processors, so the rows stored are exactly those `Connection.execute` would store. Cursor
events still fire, so anything listening for `before_cursor_execute` (tracing, the benchmarks) sees them.

Only plain statements qualify: no Python-side column defaults (they would be skipped) and no expanding `IN`
parameters (use `in_params`, one statement per list length, instead).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import BindParameter, bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any]


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...] | None  # the order of positional parameters; None when the driver takes names
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    defaults: dict[str, Any]  # values the statement carries itself (literals, LIMIT)
    row: Callable[[Sequence[Any]], Any] | None  # builds a named row from a result tuple (selects, RETURNING)
    types: tuple[Any, ...]  # the result columns' types
    # (column index, processor) for the columns that have one: known once a cursor has described the columns
    results: list[tuple[tuple[int, Callable[[Any], Any]], ...]]


class Fast:
    """One statement, compiled on first use for each dialect and set of parameter names."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        if compiled.insert_prefetch or compiled.update_prefetch or compiled.literal_execute_params:
            raise TypeError(f"not a plain statement (Python-side defaults or expanding parameters): {compiled}")
        processors = tuple((k, cast(Callable[[Any], Any], p)) for k, p in compiled._bind_processors.items())
        row = None
        if compiled._result_columns:
            names = [c[0] for c in compiled._result_columns]
            row = namedtuple("Row", names, rename=True)._make  # type: ignore[attr-defined]
        types = tuple(c[3] for c in compiled._result_columns)
        positional = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        defaults = {key: bind.effective_value for key, bind in compiled.binds.items() if not bind.required}
        return _Compiled(compiled.string, positional, processors, defaults, row, types, [])

    def _compiled_for(self, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
        compiled = self._compiled.get((dialect.name, names))
        if compiled is None:
            compiled = self._compiled[(dialect.name, names)] = self._compile(dialect, names)
        return compiled

    def _prepare(self, conn: Connection, params: Params) -> tuple[_Compiled, Any]:
        compiled = self._compiled_for(conn.dialect, tuple(params))
        if compiled.defaults or compiled.processors:
            params = {**compiled.defaults, **params}  # a copy: the caller's dict is left as it was
            for name, process in compiled.processors:
                if name in params:
                    params[name] = process(params[name])
        if compiled.names is not None:
            return compiled, tuple([params[n] for n in compiled.names])
        return compiled, params

    def _execute(self, conn: Connection, sql: str, params: Any, many: bool) -> Any:
        if not conn.in_transaction():
            conn.begin()  # as Connection.execute would: the engine's begin hook runs (BEGIN IMMEDIATE on SQLite)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        listeners = conn.dispatch.before_cursor_execute
        if listeners:
            listeners(conn, cursor, sql, params, None, many)
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except Exception as exc:
            # SQLAlchemy's own handling: the same exception classes (IntegrityError, ...), and a dropped
            # connection is invalidated rather than handed back to the pool.
            conn._handle_dbapi_exception(exc, sql, params, cursor, None)
        return cursor

    def run(self, conn: Connection, params: Params) -> Any:
        """Execute; return the driver's cursor (for rowcount)."""
        compiled, values = self._prepare(conn, params)
        return self._execute(conn, compiled.sql, values, False)

    def run_many(self, conn: Connection, rows: Sequence[Params]) -> None:
        """Execute once per row (every row with the keys of the first), in one driver call.

        The parameters are worked out a column at a time, and each distinct value object is converted once: a batch
        repeats a few values thousands of times (the run's `now` in several columns, the deadlines leads share).
        """
        if not rows:
            return
        compiled = self._compiled_for(conn.dialect, tuple(rows[0]))
        n = len(rows)
        columns: dict[str, list[Any]] = {name: [value] * n for name, value in compiled.defaults.items()}
        for name in rows[0]:
            columns[name] = [row[name] for row in rows]
        for name, process in compiled.processors:
            if name in columns:
                columns[name] = _each_once(process, columns[name])
        if compiled.names is not None:
            params: list[Any] = list(zip(*[columns[name] for name in compiled.names], strict=True))
        else:
            names = list(columns)
            params = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        self._execute(conn, compiled.sql, params, True).close()

    def all(self, conn: Connection, params: Params) -> list[Any]:
        compiled, values = self._prepare(conn, params)
        cursor = self._execute(conn, compiled.sql, values, False)
        fetched = cursor.fetchall()
        if not compiled.results:  # as SQLAlchemy does: some processors depend on the driver's column type codes
            dialect = conn.dialect
            codes = [d[1] for d in cursor.description]
            processors = [t._cached_result_processor(dialect, c) for t, c in zip(compiled.types, codes, strict=True)]
            compiled.results.append(tuple((i, p) for i, p in enumerate(processors) if p is not None))
        cursor.close()
        make, results = compiled.row, compiled.results[0]
        assert make is not None, "all() needs a statement that returns rows"
        if not results:
            return [make(r) for r in fetched]
        rows = []
        for fetched_row in fetched:
            values = list(fetched_row)
            for i, process in results:
                if values[i] is not None:
                    values[i] = process(values[i])
            rows.append(make(values))
        return rows

    def first(self, conn: Connection, params: Params) -> Any | None:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, params: Params) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]


_UNSET = object()


def _each_once(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """A bind processor over a column, once per distinct object.

    Within one executemany nothing changes the values, and the column holds them all (so their ids stay theirs):
    an object seen before converts as it did.
    """
    done: dict[int, Any] = {}
    out = []
    for value in values:
        result = done.get(id(value), _UNSET)
        if result is _UNSET:
            result = done[id(value)] = process(value)
        out.append(result)
    return out


class FastIn:
    """A statement with an `IN (...)` list: one compiled `Fast` per list length, built by `make(n)`."""

    __slots__ = ("_by_length", "make", "name")

    def __init__(self, name: str, make: Callable[[list[BindParameter[Any]]], ClauseElement]) -> None:
        self.name = name
        self.make = make
        self._by_length: dict[int, Fast] = {}

    def with_values(self, values: Sequence[Any], params: Params | None = None) -> tuple[Fast, dict[str, Any]]:
        n = len(values)
        fast = self._by_length.get(n)
        if fast is None:
            fast = self._by_length[n] = Fast(self.make([bindparam(f"{self.name}_{i}") for i in range(n)]))
        expanded = dict(params) if params else {}
        for i, value in enumerate(values):
            expanded[f"{self.name}_{i}"] = value
        return fast, expanded

    def all(self, conn: Connection, values: Sequence[Any], params: Params | None = None) -> list[Any]:
        fast, expanded = self.with_values(values, params)
        return fast.all(conn, expanded)
