"""Errors the core raises, written for the people who will read them."""

from __future__ import annotations

from dataclasses import dataclass


class LeadflowError(Exception):
    """Base of every error leadflow raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    reason: str


class InvalidInput(LeadflowError):
    """Input that cannot be accepted; carries every problem found, each naming its field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.reason} (field: {p.field})" for p in problems))

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidInput:
        return cls([FieldProblem(field, reason)])


class NotFound(LeadflowError):
    """The thing asked for does not exist."""


class Conflict(LeadflowError):
    """The request is understood but does not fit the current state."""

    code = "conflict"  # the `error` of the answer; a kind of conflict a client acts on has its own
