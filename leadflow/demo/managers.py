"""The simulated managers: how each one reacts to a lead given to them."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Action", "Profile", "Step", "plan_reaction"]


@dataclass(frozen=True, slots=True)
class Profile:
    """How one simulated manager reacts to a lead given to them; times are fractions of the deadline."""

    in_time: float  # chance of a contact before the deadline
    window: tuple[float, float]  # when that contact comes
    late: float  # chance of trying after the deadline instead (the lead has usually moved on: a 409)
    no_answer: float = 0.15  # chance the first call is not picked up and the manager calls again


PROFILES: Mapping[str, Profile] = {
    # Tuned so that about half the leads move at least once and one in thirteen reaches the head: at the default
    # pace a person watching sees the whole chain within a minute or two.
    "olena": Profile(in_time=0.80, window=(0.25, 0.75), late=0.10),  # 5-15 s of a 20 s deadline, most of the time
    "taras": Profile(in_time=0.25, window=(0.55, 0.95), late=0.45),  # often misses
    "andrii": Profile(in_time=0.50, window=(0.35, 0.90), late=0.25),  # sometimes misses
    "iryna": Profile(in_time=0.95, window=(0.30, 0.80), late=0.05, no_answer=0.0),  # the head picks up what is left
}
DEFAULT_PROFILE = Profile(in_time=0.6, window=(0.3, 0.9), late=0.2)


@dataclass(frozen=True, slots=True)
class Step:
    after: float  # seconds after the assignment
    kind: str
    outcome: str


def plan_reaction(profile: Profile, rng: random.Random, deadline_seconds: float, channel: str) -> list[Step]:
    """What a manager will do with a lead just given to them; an empty plan means they never get to it."""
    kind, done = ("message", "sent") if channel == "chat" else ("call", "connected")
    roll = rng.random()
    if roll < profile.in_time:
        at = rng.uniform(*profile.window) * deadline_seconds
    elif roll < profile.in_time + profile.late:
        at = rng.uniform(1.1, 1.5) * deadline_seconds
    else:
        return []
    steps = []
    if kind == "call" and rng.random() < profile.no_answer:
        steps.append(Step(at * 0.5, "call", "no_answer"))  # recorded, but the clock keeps running
    steps.append(Step(at, kind, done))
    return steps


@dataclass(frozen=True, slots=True)
class Action:
    lead_id: int
    manager: str
    assignment: str  # the lead's assigned_at as the API gave it: one assignment of one lead
    step: Step
