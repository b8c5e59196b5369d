"""Backlog triage, the decision part: which leads a run takes (a Selection) and what it does to each (an Action).

Pure: both are values, read from what a person typed and checked against the funnel, with every mistake named. The
service turns a Selection into a query, freezes what it matched when the run starts, and applies the Action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.rules import TEMPERATURES
from leadflow.core.schedule import parse_duration

ActionKind = Literal["junk", "lose", "requeue", "rescore"]
ACTIONS: tuple[ActionKind, ...] = ("junk", "lose", "requeue", "rescore")
NO_OWNER = "none"  # an owner selector meaning the lead has no manager
# A repeat request folded into the client's open lead is never worked on its own, so no run takes one.
NEVER_SELECTED = ("merged",)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which leads: every condition given must hold (an empty one does not restrict). Ages count back from the
    moment the run starts, so a run always means the leads that matched then."""

    statuses: tuple[str, ...] = ()
    created_before: datetime | None = None
    older_than: timedelta | None = None  # created more than this long before the run
    idle_for: timedelta | None = None  # no event on the lead for this long
    owners: tuple[str, ...] = ()  # manager keys, or "none" for leads nobody owns
    channels: tuple[str, ...] = ()
    min_score: int | None = None
    max_score: int | None = None
    temperatures: tuple[str, ...] = ()

    def created_cutoff(self, at: datetime) -> datetime | None:
        """The latest creation time a lead may have, for a run started `at`."""
        cutoffs = [c for c in (self.created_before, at - self.older_than if self.older_than else None) if c]
        return min(cutoffs) if cutoffs else None

    def idle_cutoff(self, at: datetime) -> datetime | None:
        """Leads with an event at or after this moment are not idle."""
        return at - self.idle_for if self.idle_for else None

    def to_json(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses),
            "created_before": self.created_before.isoformat() if self.created_before else None,
            "older_than_s": self.older_than.total_seconds() if self.older_than else None,
            "idle_for_s": self.idle_for.total_seconds() if self.idle_for else None,
            "owners": list(self.owners),
            "channels": list(self.channels),
            "min_score": self.min_score,
            "max_score": self.max_score,
            "temperatures": list(self.temperatures),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        def seconds(value: float | None) -> timedelta | None:
            return timedelta(seconds=value) if value is not None else None

        before = data.get("created_before")
        return cls(
            statuses=tuple(data.get("statuses") or ()),
            created_before=datetime.fromisoformat(before) if before else None,
            older_than=seconds(data.get("older_than_s")),
            idle_for=seconds(data.get("idle_for_s")),
            owners=tuple(data.get("owners") or ()),
            channels=tuple(data.get("channels") or ()),
            min_score=data.get("min_score"),
            max_score=data.get("max_score"),
            temperatures=tuple(data.get("temperatures") or ()),
        )

    def describe(self) -> str:
        """The selection as a person would say it, for lists and events."""
        parts = []
        if self.statuses:
            parts.append("status " + "/".join(self.statuses))
        if self.older_than:
            parts.append(f"older than {_span(self.older_than)}")
        if self.created_before:
            parts.append(f"created before {self.created_before.isoformat(timespec='minutes')}")
        if self.idle_for:
            parts.append(f"idle for {_span(self.idle_for)}")
        if self.owners:
            parts.append("owner " + "/".join(self.owners))
        if self.channels:
            parts.append("channel " + "/".join(self.channels))
        if self.min_score is not None:
            parts.append(f"score >= {self.min_score}")
        if self.max_score is not None:
            parts.append(f"score <= {self.max_score}")
        if self.temperatures:
            parts.append("temperature " + "/".join(self.temperatures))
        return ", ".join(parts) or "every lead"


@dataclass(frozen=True, slots=True)
class Action:
    """What the run does to each lead: junk or close as lost (with the reason), return to the unassigned queue
    (then routed by the batch), or score again with the rules in force."""

    kind: ActionKind
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(data["kind"], data.get("reason"))

    def describe(self) -> str:
        verb = {"junk": "junk", "lose": "close as lost", "requeue": "return to the unassigned queue",
                "rescore": "score again"}[self.kind]  # fmt: skip
        return f"{verb}: {self.reason}" if self.reason else verb


@dataclass(frozen=True, slots=True)
class Typed:
    """A selection and an action as a person gives them on the command line (durations as text, lists as
    repeated options); `read` checks them against the funnel."""

    action: str
    reason: str | None = None
    statuses: Sequence[str] = ()
    created_before: datetime | None = None
    older_than: str | None = None
    idle_for: str | None = None
    owners: Sequence[str] = ()
    channels: Sequence[str] = ()
    min_score: int | None = None
    max_score: int | None = None
    temperatures: Sequence[str] = field(default_factory=tuple)


def read(typed: Typed, funnel: Iterable[str], closes_as_lost: Iterable[str]) -> tuple[Selection, Action]:
    """The Selection and Action of what was typed, or InvalidInput naming every mistake at once.

    `funnel` are the statuses a lead can have; `closes_as_lost` the funnel statuses whose outcome is lost (the
    action `lose` needs one)."""
    problems: list[FieldProblem] = []
    known = [s for s in funnel if s not in NEVER_SELECTED]
    for status in typed.statuses:
        if status not in known:
            problems.append(FieldProblem("status", f"'{status}' is not a status: use one of {', '.join(known)}"))
    for temperature in typed.temperatures:
        if temperature not in TEMPERATURES:
            problems.append(FieldProblem("temperature", f"'{temperature}' is not a temperature: use one of "
                                                        f"{', '.join(TEMPERATURES)}"))  # fmt: skip
    older = _duration("older_than", typed.older_than, problems)
    idle = _duration("idle_for", typed.idle_for, problems)
    if typed.created_before is not None and typed.created_before.tzinfo is None:
        problems.append(FieldProblem("created_before", "give a time zone, e.g. 2026-11-23T10:00:00Z or +02:00"))
    for name, score in (("min_score", typed.min_score), ("max_score", typed.max_score)):
        if score is not None and score < 0:
            problems.append(FieldProblem(name, "a score is never negative"))
    if typed.min_score is not None and typed.max_score is not None and typed.min_score > typed.max_score:
        problems.append(FieldProblem("max_score", f"the maximum score {typed.max_score} is below the minimum "
                                                  f"{typed.min_score}: nothing could match"))  # fmt: skip
    for owner in typed.owners:
        if not owner.strip():
            problems.append(FieldProblem("owner", f"an owner is a manager's key, or '{NO_OWNER}'"))
    for channel in typed.channels:
        if not channel.strip():
            problems.append(FieldProblem("channel", "a channel is a name such as web or telegram"))
    reason = (typed.reason or "").strip() or None
    if typed.action not in ACTIONS:
        problems.append(FieldProblem("action", f"'{typed.action}' is not an action: use one of {', '.join(ACTIONS)}"))
    elif typed.action in ("junk", "lose") and reason is None:
        what = "junk" if typed.action == "junk" else "lost"
        problems.append(FieldProblem("reason", f"say why these leads are {what} (--reason): it is kept on each lead"))
    elif typed.action in ("requeue", "rescore") and reason is not None:
        problems.append(FieldProblem("reason", f"'{typed.action}' takes no reason: the routing and the scoring "
                                               "give their own"))  # fmt: skip
    if typed.action == "lose" and not list(closes_as_lost):
        problems.append(FieldProblem("action", "the funnel has no status that closes a lead as lost"))
    if problems:
        raise InvalidInput(problems)
    selection = Selection(
        statuses=_unique(typed.statuses), created_before=typed.created_before, older_than=older, idle_for=idle,
        owners=_unique(o.strip() for o in typed.owners), channels=_unique(c.strip() for c in typed.channels),
        min_score=typed.min_score, max_score=typed.max_score, temperatures=_unique(typed.temperatures),
    )  # fmt: skip
    return selection, Action(typed.action, reason)  # type: ignore[arg-type]  # checked against ACTIONS above


def _duration(name: str, text: str | None, problems: list[FieldProblem]) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        problems.append(FieldProblem(name, f"{e}: write it like 90d, 12h or 2w"))
        return None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _span(value: timedelta) -> str:
    days, rest = divmod(int(value.total_seconds()), 86400)
    if days and not rest:
        return f"{days}d"
    hours = rest // 3600
    return f"{days}d{hours}h" if days else f"{hours}h" if hours else f"{rest // 60}m"
