"""One writer per process: intake's transactions queue in arrival order and commit in small groups.

SQLite lets one connection write at a time. When every request opens its own write transaction, the others wait
for the lock by sleeping and trying again (the busy handler), so under load who gets the lock next is a lottery and
the slowest requests wait seconds. On PostgreSQL, routing holds its team's row lock until the commit, so one
team's leads were taken one commit at a time, each waiting for the disk. Here one thread owns a write connection.
Work is queued (first in, first out); the thread takes everything that is waiting, up to `max_group`, and runs
each piece in its own savepoint inside one transaction, then commits once:

* one piece that fails rolls back to its savepoint and fails alone; the others commit;
* every piece is answered only after the commit that holds it: acknowledged means committed. A commit that fails
  fails every piece of its group, none of which was answered, so a client's retry (same idempotency key) is safe;
* a group costs one commit, and nobody polls for the lock: the wait is the queue.

Readers keep their own connections (WAL lets them read while the writer writes). Other writers of the process
(the worker, a batch run) still take the lock their usual way; the group holds it only while it runs. On
PostgreSQL, a group takes every routing team's lock first, in one order (`opening`), and holds them to its commit:
the serving processes take turns a group at a time, and two groups never wait for each other in a circle. A piece
the server still picks to break a deadlock (two clients' locks) is run again in the next group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    future: Future[T] | None = None  # a thread waits on it
    loop: asyncio.AbstractEventLoop | None = None  # or a coroutine awaits this, resolved on its loop
    waiter: asyncio.Future[T] | None = None
    outcome: tuple[bool, Any] = field(default=(False, None))
    tries: int = 0

    def answer(self, ok: bool, value: Any) -> None:
        if self.future is not None:
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)
        elif self.loop is not None and self.waiter is not None:
            # An event loop that has closed (the server is stopping) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_settle, self.waiter, ok, value)


def _settle(waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if waiter.cancelled():  # the client went away; the work is committed (or not) all the same
        return
    if ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)


_STOP = object()
_AGAIN = object()  # a piece's outcome: run it again in the next group
_TRIES = 5


def _transient(exc: Exception) -> bool:
    """A deadlock or serialisation failure (PostgreSQL): nothing wrong with the piece, only its timing."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001")


class GroupWriter:
    """The process's intake writer: run(work) and run_async(work) give `work` a connection inside a transaction."""

    def __init__(
        self, engine: Engine, *, max_group: int = 32, opening: Callable[[Connection], None] | None = None
    ) -> None:
        self.engine = engine
        self.max_group = max_group
        self.opening = opening  # run first in every group's transaction (PostgreSQL: take the team locks in order)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="leadflow-writer", daemon=True)
        self._started = False
        self._conn: Connection | None = None  # the writer's connection while it has one
        self._busy = threading.Lock()  # held while a group runs, on the writer's thread or a caller's
        self.groups = 0  # how many transactions, and how many pieces of work, so far (health, benches)
        self.pieces = 0

    def start(self) -> GroupWriter:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next group and return what it returned once that group has committed.

        A caller that finds the writer idle (nothing queued, no group running) runs its work at once on the
        writer's connection, as a group of one: the trip to the writer's thread and back cost a sequential caller
        a fifth of its time. The writer's lock keeps the two from ever writing at the same time.
        """
        conn = self._conn
        job: _Job[T] = _Job(work, future=Future())
        assert job.future is not None
        if conn is not None and self._queue.empty() and self._busy.acquire(blocking=False):
            try:
                ran = self._conn is conn and self._queue.empty()
                if ran:
                    self._commit(conn, [job])  # answers the job, or queues it again (a deadlock victim)
            finally:
                self._busy.release()
            if ran:
                return job.future.result()
        self._queue.put(job)
        return job.future.result()

    async def run_async(self, work: Callable[[Connection], T]) -> T:
        """run(), awaited on the event loop: no thread of the pool waits for the commit."""
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(work, loop=loop, waiter=loop.create_future())
        self._queue.put(job)
        assert job.waiter is not None
        return await job.waiter

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._started and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _loop(self) -> None:
        while True:
            try:
                with self.engine.connect() as conn:
                    self._conn = conn
                    try:
                        while True:
                            group, stop = self._take()
                            with self._busy:
                                kept = not group or self._commit(conn, group)
                            if stop:
                                return
                            if not kept:
                                break  # the connection was lost with that group: a new one for the next
                    finally:
                        self._conn = None
            except Exception as exc:  # the database cannot be reached: say so to whoever waits, and try again
                log.exception("the writer could not reach the database; trying again in 1 s")
                if self._fail_waiting(exc):
                    return
                time.sleep(1.0)

    def _fail_waiting(self, exc: Exception) -> bool:
        """Answer everything queued with the error; True when close() was asked for meanwhile."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is _STOP:
                return True
            job.answer(False, exc)

    def _take(self) -> tuple[list[_Job[Any]], bool]:
        """What is waiting, up to max_group (blocking for the first); and whether close() was asked for."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        group = [first]
        while len(group) < self.max_group:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                return group, True
            group.append(more)
        return group, False

    def _commit(self, conn: Connection, group: list[_Job[Any]]) -> bool:
        """Run and commit one group, answer its pieces; False when the connection was lost with it."""
        if len(group) == 1:
            return self._alone(conn, group[0])
        try:
            with conn.begin():
                # Savepoints straight on the driver's connection: through SQLAlchemy's nested transactions they
                # cost a fifth of the writer's time. SQLAlchemy keeps its one transaction, the group's.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                if self.opening is not None:
                    self.opening(conn)
                for job in group:
                    raw.execute("SAVEPOINT piece")
                    try:
                        job.outcome = (True, job.work(conn))
                    except Exception as exc:  # this piece alone: back to its savepoint
                        raw.execute("ROLLBACK TO piece")
                        job.outcome = (False, exc)
                        self._maybe_again(job, exc)
                    raw.execute("RELEASE piece")
        except Exception as exc:  # the commit (or the savepoint machinery) failed: nothing of the group is kept
            log.exception("a group of %d writes failed to commit", len(group))
            for job in group:
                job.answer(False, exc)
            return not (isinstance(exc, DBAPIError) and exc.connection_invalidated) and not conn.invalidated
        self.groups += 1
        self.pieces += len(group)
        self._answer(group)
        return True

    def _alone(self, conn: Connection, job: _Job[Any]) -> bool:
        """A group of one needs no savepoint: its transaction is the piece's, rolled back if the piece fails."""
        try:
            with conn.begin():
                if self.opening is not None:
                    self.opening(conn)
                job.outcome = (True, job.work(conn))
        except Exception as exc:  # the piece or its commit failed: nothing of it is kept
            job.outcome = (False, exc)
            self._maybe_again(job, exc)
        else:
            self.groups += 1
            self.pieces += 1
        self._answer([job])
        return not conn.invalidated

    def _answer(self, group: list[_Job[Any]]) -> None:
        """Each piece its outcome, after the commit; a deadlock victim goes back in the queue instead."""
        for job in group:
            if job.outcome[1] is _AGAIN:
                self._queue.put(job)
            else:
                job.answer(*job.outcome)

    @staticmethod
    def _maybe_again(job: _Job[Any], exc: Exception) -> None:
        if _transient(exc) and job.tries < _TRIES:
            # Another process's group held what this one waited for, and the server chose this piece to break
            # the circle: it goes again in the next group, after this one commits.
            job.tries += 1
            job.outcome = (False, _AGAIN)
