"""What every use case needs: the database and the rules in force."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from leadflow.channels.config import NotifyConfig
from leadflow.core.lead import CleanLead
from leadflow.core.rules import RulesFile


@dataclass
class Leadflow:
    engine: Engine
    rules: RulesFile
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    base_url: str = "http://127.0.0.1:8000"
    # The trained win-probability model, when there is one: lead -> (probability, its top factors).
    predict: Callable[[CleanLead], tuple[float, list[dict[str, Any]]] | None] | None = None

    def link(self, lead_id: int) -> str:
        return f"{self.base_url}/api/v1/leads/{lead_id}"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


def utcnow() -> datetime:
    """The shell's clock; the core never calls it, it is handed the time."""
    return datetime.now(UTC)
