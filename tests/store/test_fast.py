"""Hot-path statements on the driver's cursor store and read exactly what SQLAlchemy's execute would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, bindparam, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from leadflow.store.fast import Fast, FastIn
from leadflow.store.tables import UTCDateTime, events, leads, managers, rr_pointers, teams

NOW = datetime(2026, 3, 3, 9, 30, 15, 123456, tzinfo=UTC)


def _lead(**extra: Any) -> dict[str, Any]:
    return {
        "channel": "web", "source": "landing", "name": "Олена", "phone": "+380671234567", "status": "new",
        "budget": Decimal("125000.50"), "utm": {"utm_source": "google"}, "raw": {"name": "Олена", "n": [1, 2]},
        "created_at": NOW, "updated_at": NOW + timedelta(seconds=1), "score_detail": None, **extra,
    }  # fmt: skip


def _stored(engine: Engine, lead_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one())


def test_a_row_written_fast_equals_one_written_by_execute(engine: Engine) -> None:
    insert = Fast(leads.insert().returning(leads.c.id, leads.c.created_at, leads.c.budget, leads.c.raw))
    with engine.begin() as conn:
        fast_row = insert.first(conn, _lead(external_id="a"))
        slow_id = conn.execute(leads.insert().returning(leads.c.id), _lead(external_id="b")).scalar_one()
    assert fast_row is not None
    # RETURNING comes back through the column types, as execute gives it.
    assert fast_row.created_at == NOW and fast_row.budget == Decimal("125000.50")
    assert fast_row.raw == {"name": "Олена", "n": [1, 2]}
    fast_stored, slow_stored = _stored(engine, fast_row.id), _stored(engine, slow_id)
    assert (fast_stored.pop("external_id"), slow_stored.pop("external_id")) == ("a", "b")
    assert (fast_stored.pop("id"), slow_stored.pop("id")) == (fast_row.id, slow_id)
    assert fast_stored == slow_stored
    assert fast_stored["budget"] == Decimal("125000.50") and fast_stored["updated_at"] == NOW + timedelta(seconds=1)


def test_reads_go_through_result_types_and_in_lists(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(teams.insert(), [{"key": k, "name": k, "created_at": NOW, "updated_at": NOW} for k in "abc"])
        conn.execute(
            rr_pointers.insert(), {"rule_key": "r1", "last_manager_key": "m", "state": {"credits": {"m": 1.5}}}
        )
        by_keys = FastIn("key", lambda keys: select(teams.c.key, teams.c.updated_at, teams.c.scoring)
                         .where(teams.c.key.in_(keys)).order_by(teams.c.key))  # fmt: skip
        rows = by_keys.all(conn, ["a", "c"])
        assert [(r.key, r.updated_at, r.scoring) for r in rows] == [("a", NOW, True), ("c", NOW, True)]
        assert [r.key for r in by_keys.all(conn, ["b"])] == ["b"]
        pointer = Fast(select(rr_pointers).where(rr_pointers.c.rule_key == bindparam("key"))).first(conn, {"key": "r1"})
        assert pointer is not None and pointer.state == {"credits": {"m": 1.5}}
        assert Fast(select(teams.c.id).where(teams.c.key == bindparam("k"))).first(conn, {"k": "none"}) is None


def test_executemany_and_rowcount(engine: Engine) -> None:
    with engine.begin() as conn:
        lead_id = Fast(leads.insert().returning(leads.c.id)).scalar(conn, _lead())
        Fast(events.insert()).run_many(
            conn, [{"lead_id": lead_id, "type": f"t{i}", "actor": None, "data": {"i": i}, "at": NOW} for i in range(3)]
        )
        Fast(events.insert()).run_many(conn, [])  # nothing to write is not an error
        bump = Fast(leads.update().where(leads.c.id == bindparam("lead")).values(status=bindparam("st")))
        assert bump.run(conn, {"lead": lead_id, "st": "assigned"}).rowcount == 1
        assert bump.run(conn, {"lead": lead_id + 99, "st": "assigned"}).rowcount == 0
    with engine.connect() as conn:
        got = conn.execute(select(events.c.type, events.c.data, events.c.at).order_by(events.c.id)).all()
        assert [tuple(r) for r in got] == [(f"t{i}", {"i": i}, NOW) for i in range(3)]
        assert conn.execute(select(leads.c.status)).scalar_one() == "assigned"


def test_errors_are_sqlalchemy_errors_and_leave_nothing(engine: Engine) -> None:
    insert = Fast(leads.insert().returning(leads.c.id))
    with engine.begin() as conn:
        insert.scalar(conn, _lead(channel="fb", external_id="x1"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert.scalar(conn, _lead(channel="fb", external_id="x2"))
        insert.scalar(conn, _lead(channel="fb", external_id="x1"))  # unique (channel, external_id)
    with engine.connect() as conn:
        assert conn.execute(select(leads.c.external_id)).scalars().all() == ["x1"]


def test_outside_a_transaction_it_begins_one_like_execute(engine: Engine) -> None:
    seen: list[str] = []
    event.listen(engine, "begin", lambda conn: seen.append("begin"))
    with engine.connect() as conn:
        Fast(managers.update().values(capacity=5)).run(conn, {})
        assert conn.in_transaction() and seen == ["begin"]
        conn.rollback()


def test_cursor_listeners_see_the_statements(engine: Engine) -> None:
    sent: list[tuple[str, bool]] = []

    def on_execute(_conn: Any, _cursor: Any, sql: str, _params: Any, _context: Any, many: bool) -> None:
        sent.append((sql.split()[0], many))

    event.listen(engine, "before_cursor_execute", on_execute)
    with engine.begin() as conn:
        lead_id = Fast(leads.insert().returning(leads.c.id)).scalar(conn, _lead())
        Fast(events.insert()).run_many(conn, [{"lead_id": lead_id, "type": "t", "actor": None, "data": {}, "at": NOW}])
    assert ("INSERT", False) in sent and ("INSERT", True) in sent


def test_statements_with_python_defaults_are_refused(engine: Engine) -> None:
    table = Table("with_default", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer, default=7))
    with engine.connect() as conn, pytest.raises(TypeError, match="not a plain statement"):
        Fast(table.insert()).run(conn, {"id": 1})


def test_times_on_sqlite_are_the_text_sqlalchemy_writes() -> None:
    """UTCDateTime's own SQLite conversion writes and reads exactly what SQLAlchemy's DATETIME does."""
    dialect = sqlite.dialect()
    ours_in, ours_out = UTCDateTime().bind_processor(dialect), UTCDateTime().result_processor(dialect, None)
    theirs_in = DateTime().dialect_impl(dialect).bind_processor(dialect)
    kyiv = timezone(timedelta(hours=2))
    for moment in (NOW, NOW.replace(microsecond=0), datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), NOW.astimezone(kyiv)):
        text = ours_in(moment)
        assert text == theirs_in(moment.astimezone(UTC).replace(tzinfo=None))
        assert ours_out(text) == moment and ours_out(text).tzinfo == UTC
    assert ours_out("2026-03-03 09:30:15") == datetime(2026, 3, 3, 9, 30, 15, tzinfo=UTC)  # written without micros
    with pytest.raises(ValueError, match="naive datetime"):
        ours_in(datetime(2026, 3, 3))
