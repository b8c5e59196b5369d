"""SQLite's group writer on a real file: one bad piece fails alone, every answer follows the commit that holds it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import Connection

from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow
from leadflow.services.intake import IdempotencyKeyReused, take_lead, take_lead_async
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import leads
from leadflow.store.writer import GroupWriter

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    migrate(url)
    made = make_engine(url)
    with made.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (key TEXT PRIMARY KEY)"))
    yield made
    made.dispose()


def _insert(n: int, fail: bool = False) -> object:
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO scratch (key) VALUES (:k)"), {"k": f"t{n}"})
        if fail:
            raise ValueError(f"piece {n} is bad")
        return n

    return work


def _keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT key FROM scratch")).scalars())


def test_pieces_queued_together_commit_together_and_a_bad_one_fails_alone(engine: Engine) -> None:
    writer = GroupWriter(engine, max_group=64)
    results: dict[int, object] = {}
    gate = threading.Barrier(40)

    def submit(n: int) -> None:
        gate.wait()
        try:
            results[n] = writer.run(_insert(n, fail=n % 10 == 3))  # type: ignore[arg-type]
        except ValueError as exc:
            results[n] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    writer.start()  # everything is queued by now: the first groups are large
    for t in threads:
        t.join()
    writer.close()
    bad = {n for n in range(40) if n % 10 == 3}
    assert {n for n, r in results.items() if isinstance(r, ValueError)} == bad
    assert {n: r for n, r in results.items() if n not in bad} == {n: n for n in range(40) if n not in bad}
    assert _keys(engine) == {f"t{n}" for n in range(40) if n not in bad}
    assert writer.pieces == 40 and writer.groups < 40  # grouped: fewer commits than pieces


def test_an_answer_comes_after_its_commit(engine: Engine) -> None:
    writer = GroupWriter(engine).start()
    seen_by_another_connection: list[set[str]] = []

    def work(conn: Connection) -> str:
        conn.execute(text("INSERT INTO scratch (key) VALUES ('late')"))
        return "done"

    assert writer.run(work) == "done"
    seen_by_another_connection.append(_keys(engine))  # a reader sees it the moment run() returns
    assert "late" in seen_by_another_connection[0]

    async def awaited() -> int:
        return await writer.run_async(_insert(7))  # type: ignore[arg-type]

    assert asyncio.run(awaited()) == 7 and "t7" in _keys(engine)
    writer.close()


def test_a_failed_commit_fails_every_piece_of_the_group(engine: Engine) -> None:
    """A piece that breaks the group's transaction itself (here: ends it) takes the group with it: none of its
    pieces is acknowledged, whatever each did. (A piece alone in its group has the transaction to itself.)"""
    writer = GroupWriter(engine)

    def breaks(conn: Connection) -> None:
        conn.execute(text("INSERT INTO scratch (key) VALUES ('x')"))
        conn.exec_driver_sql("COMMIT")  # out from under the writer's transaction: its RELEASE then fails

    outcomes: dict[str, object] = {}

    def submit(name: str, work: object) -> None:
        try:
            outcomes[name] = writer.run(work)  # type: ignore[arg-type]
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=submit, args=("good", _insert(1))),
               threading.Thread(target=submit, args=("bad", breaks))]  # fmt: skip
    for t in threads:
        t.start()
    while writer._queue.qsize() < 2:  # both queued before the writer starts: one group
        time.sleep(0.01)
    writer.start()
    for t in threads:
        t.join()
    assert isinstance(outcomes["good"], Exception) and isinstance(outcomes["bad"], Exception)
    assert writer.run(_insert(2)) == 2  # type: ignore[arg-type]  # the writer goes on
    writer.close()


def test_intake_through_the_writer_keeps_idempotency_inside_a_group(engine: Engine, tmp_path: Path) -> None:
    from leadflow.core.rules_text import parse_rules
    from leadflow.store.team_state import apply_rules_people

    rules = parse_rules(
        "teams: [{key: s, name: S}]\nmanagers: [{key: a, name: A, team: s}]\nrouting: {rules: [{key: all, team: s}]}\n",
        "rules.yaml",
    )
    with engine.begin() as conn:
        apply_rules_people(conn, rules, NOW)
    app = Leadflow(engine=engine, rules=rules, writer=GroupWriter(engine))

    async def burst() -> list[object]:
        posts = [take_lead_async(app, LeadIn(name=f"C{i % 20}", phone=f"+38067{i % 20:07d}"), NOW,
                                 idempotency_key=f"k{i % 20}") for i in range(60)]  # fmt: skip
        app.writer.start()  # type: ignore[union-attr]
        return await asyncio.gather(*posts, return_exceptions=True)

    answers = asyncio.run(burst())
    assert not [a for a in answers if isinstance(a, BaseException)]
    ids = [a.lead_id for a in answers]  # type: ignore[attr-defined]
    assert len(set(ids)) == 20 and ids[:20] == ids[20:40] == ids[40:]  # each key once, the same lead after
    assert sum(a.created for a in answers) == 20  # type: ignore[attr-defined]
    again = take_lead(app, LeadIn(name="C3", phone="+380670000003"), NOW, idempotency_key="k3")
    assert (again.lead_id, again.created) == (ids[3], False)
    with pytest.raises(IdempotencyKeyReused):  # refused inside its savepoint; the refusal reaches the caller
        take_lead(app, LeadIn(name="Someone else", phone="+380501112233"), NOW, idempotency_key="k3")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == 20
    app.writer.close()  # type: ignore[union-attr]


def test_a_writer_whose_database_is_unreachable_answers_with_the_error_and_recovers(tmp_path: Path) -> None:
    """Pieces waiting while the database cannot be opened fail at once (nobody hangs); later ones go through."""
    target = tmp_path / "later" / "w.db"  # its folder does not exist yet: SQLite cannot open the file
    engine = make_engine(f"sqlite:///{target}")
    writer = GroupWriter(engine).start()
    with pytest.raises(Exception, match="unable to open database file"):
        writer.run(_insert(1))  # type: ignore[arg-type]
    target.parent.mkdir()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (key TEXT PRIMARY KEY)"))
    deadline = time.monotonic() + 10
    while True:
        try:
            assert writer.run(_insert(2)) == 2  # type: ignore[arg-type]
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    assert _keys(engine) == {"t2"}
    writer.close()
    engine.dispose()
