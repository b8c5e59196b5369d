"""Live pages: one reader of new events per process tells each open page that what it shows has changed.

The database is the source of truth, so the signal comes from the events table, whichever process (this one, the
worker, another server) made the change: every POLL_SECONDS the hub reads the events after the last one it saw,
with each lead's owner and team, and wakes the pages that show that lead. A page then asks for its fragment again
through the same services as any other request, so what it shows is decided in one place. One query a tick, for
any number of open pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from leadflow.core.policy import Action, Principal, can, lead_scope
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import events, leads, managers

log = logging.getLogger("leadflow.web")
POLL_SECONDS = 0.25
BATCH = 2000
HEARTBEAT_SECONDS = 15.0

# What changes a team's view: a lead arriving, moving, being worked or closed.
_TEAM_EVENTS = frozenset({
    "lead.received", "lead.assigned", "lead.unassigned", "lead.escalated", "lead.chain_exhausted",
    "lead.reassigned", "lead.contacted", "lead.contact_attempt", "lead.status_changed", "lead.junked",
    "lead.restored", "lead.queued", "lead.left_desk", "lead.desk_overdue", "lead.duplicate", "lead.repeat",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    event_id: int
    lead_id: int | None
    type: str
    manager_id: int | None  # the lead's owner after the change
    team_id: int | None  # the owner's team, or the team the lead is headed for
    at_desk: bool


@dataclass(eq=False)
class Watcher:
    """One open page: who looks, and which signals it wants."""

    who: Principal
    lead_id: int | None = None  # a lead card: that lead's changes
    mine: set[int] = field(default_factory=set)  # a manager's queue: the leads they own
    signals: asyncio.Queue[tuple[str, str]] = field(default_factory=lambda: asyncio.Queue(maxsize=100))

    def notice(self, changes: Sequence[Change]) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        scope = lead_scope(self.who)
        for c in changes:
            if c.lead_id is None:
                continue
            if self.lead_id is not None and c.lead_id == self.lead_id:
                found.setdefault("lead", set()).add(c.lead_id)
            me = self.who.manager_id
            if me is not None and (c.manager_id == me or c.lead_id in self.mine):
                found.setdefault("queue", set()).add(c.lead_id)
                if c.manager_id == me:
                    self.mine.add(c.lead_id)
                else:
                    self.mine.discard(c.lead_id)
            if c.type in _TEAM_EVENTS and (scope.everything or (c.team_id is not None and c.team_id in scope.team_ids)):
                found.setdefault("team", set()).add(c.lead_id)
            if (c.at_desk or c.type in ("lead.queued", "lead.left_desk")) and can(self.who, Action.DESK_READ) and (
                scope.everything or scope.desk_all_teams or c.team_id in scope.desk_team_ids or
                c.team_id in scope.team_ids
            ):  # fmt: skip
                found.setdefault("desk", set()).add(c.lead_id)
        return found

    def send(self, name: str, ids: set[int]) -> None:
        # A page far behind drops a signal: it reloads its whole fragment on the next one it reads anyway.
        with contextlib.suppress(asyncio.QueueFull):
            self.signals.put_nowait((name, ",".join(str(i) for i in sorted(ids)[:50])))


_OWNER_TEAM = select(managers.c.team_id).where(managers.c.id == leads.c.manager_id).scalar_subquery()


def _team(manager_id: int | None, owner_team: int | None, headed_for: int | None) -> int | None:
    return owner_team if manager_id is not None else headed_for


class LiveHub:
    def __init__(
        self, app: Leadflow, poll_seconds: float = POLL_SECONDS, heartbeat_seconds: float = HEARTBEAT_SECONDS
    ) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._watchers: set[Watcher] = set()
        self._cursor: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def watching(self) -> int:
        return len(self._watchers)

    def _last_event(self) -> int:
        with self.app.engine.connect().execution_options(**READ_ONLY) as conn:
            return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())

    def _owned(self, manager_id: int) -> set[int]:
        with self.app.engine.connect().execution_options(**READ_ONLY) as conn:
            query = select(leads.c.id).where(leads.c.manager_id == manager_id,
                                             leads.c.status.in_(sorted(self.app.rules.open_statuses)))  # fmt: skip
            return set(conn.execute(query).scalars())

    def _changes_after(self, cursor: int) -> list[Change]:
        query = (
            select(events.c.id, events.c.lead_id, events.c.type, leads.c.manager_id, leads.c.team_id,
                   leads.c.queue, _OWNER_TEAM.label("owner_team"))
            .outerjoin(leads, leads.c.id == events.c.lead_id)
            .where(events.c.id > cursor).order_by(events.c.id).limit(BATCH)
        )  # fmt: skip
        with self.app.engine.connect().execution_options(**READ_ONLY) as conn:
            return [
                Change(
                    r.id,
                    r.lead_id,
                    r.type,
                    r.manager_id,
                    _team(r.manager_id, r.owner_team, r.team_id),
                    r.queue == "desk",
                )
                for r in conn.execute(query)
            ]

    async def watch(self, watcher: Watcher) -> AsyncIterator[tuple[str, str]]:
        """The signals for one page until it goes away; a heartbeat comment keeps proxies from closing it."""
        if self._cursor is None:
            self._cursor = await to_thread.run_sync(self._last_event)
        if watcher.who.manager_id is not None:
            watcher.mine = await to_thread.run_sync(self._owned, watcher.who.manager_id)
        self._watchers.add(watcher)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            while True:
                try:
                    yield await asyncio.wait_for(watcher.signals.get(), self.heartbeat_seconds)
                except TimeoutError:
                    yield ("", "")
        finally:
            self._watchers.discard(watcher)

    async def _run(self) -> None:
        while self._watchers:
            try:
                await self.tick()
            except SQLAlchemyError:
                log.warning("live pages: could not read new events; trying again", exc_info=True)
            await asyncio.sleep(self.poll_seconds)
        self._task = None

    async def tick(self) -> None:
        cursor = self._cursor or 0
        changes = await to_thread.run_sync(self._changes_after, cursor)
        if not changes:
            return
        self._cursor = changes[-1].event_id
        for watcher in list(self._watchers):
            for name, ids in watcher.notice(changes).items():
                watcher.send(name, ids)


def event_stream_line(name: str, data: str) -> str:
    """One server-sent event (or, nameless, a comment that only keeps the connection open)."""
    if not name:
        return ": keep-alive\n\n"
    return f"event: {name}\ndata: {data}\n\n"


def hub_of(state: Any) -> LiveHub:
    hub: LiveHub = state.live
    return hub
