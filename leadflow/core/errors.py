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


class Unavailable(LeadflowError):
    """Something leadflow needs (the database) does not answer: the request may be sent again later."""


class Unauthenticated(LeadflowError):
    """No credentials, or credentials that are not (or no longer) valid."""


class Forbidden(LeadflowError):
    """Known, but not allowed to do this."""


class TooManyRequests(LeadflowError):
    """Over a limit (sign-in attempts, leads a minute); `retry_after`: seconds until it lifts."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
