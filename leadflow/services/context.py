"""What every use case needs: the database and the rules in force."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from leadflow.channels.config import NotifyConfig
from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.core.lead import CleanLead
from leadflow.core.rules import RulesFile
from leadflow.store.tables import teams
from leadflow.store.writer import GroupWriter

T = TypeVar("T")


@dataclass
class Leadflow:
    engine: Engine
    rules: RulesFile
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    base_url: str = "http://127.0.0.1:8000"
    # The trained win-probability model, when there is one: lead -> (probability, its top factors).
    predict: Callable[[CleanLead], tuple[float, list[dict[str, Any]]] | None] | None = None
    # The group writer, when this process serves intake (see store/writer.py); None: a transaction each.
    writer: GroupWriter | None = None
    # The inbound channels' credentials: replies to clients go out with them.
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    # Team ids by key, as the database numbered them (a team keeps its id while it exists).
    _team_ids: dict[str, int] = field(default_factory=dict, repr=False)

    def team_id(self, conn: Connection, key: str | None) -> int | None:
        if key is None:
            return None
        found = self._team_ids.get(key)
        if found is None:
            found = conn.execute(select(teams.c.id).where(teams.c.key == key)).scalar()
            if found is not None:
                self._team_ids[key] = found
        return found

    def forget_team(self, key: str) -> None:
        self._team_ids.pop(key, None)

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` inside a write transaction, committed before this returns: on the group writer if there is
        one, else in a transaction of its own."""
        if self.writer is not None:
            return self.writer.run(work)
        with self.engine.begin() as conn:
            return work(conn)

    async def transaction_async(self, work: Callable[[Connection], T]) -> T:
        """transaction(), awaited: the writer's queue, or a thread of the pool."""
        if self.writer is not None:
            return await self.writer.run_async(work)
        return await to_thread.run_sync(self.transaction, work)

    def link(self, lead_id: int) -> str:
        return f"{self.base_url}/api/v1/leads/{lead_id}"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


def utcnow() -> datetime:
    """The shell's clock; the core never calls it, it is handed the time."""
    return datetime.now(UTC)
