"""What an inbound channel offers the rest of leadflow, and what it is given: a replier sends a reply to a client,
a poller asks a service for new messages, and the services a poller needs are handed to it (channels never import
services)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from leadflow.core.conversation import Inbound


class Replier(Protocol):
    """Sends a reply to a client through one service; returns the service's id for the sent message."""

    def send(self, address: str, text: str, subject: str | None, payload: Mapping[str, Any]) -> str | None: ...

    def close(self) -> None: ...


class Poller(Protocol):
    """A loop that asks a service for new messages until `stop` is set (it sleeps on `stop`, so it ends at once)."""

    name: str

    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True, slots=True)
class PollerServices:
    """What a poller needs from the rest of leadflow, handed in by the worker (channels never import services):
    take what was read (committed when it returns), and keep a channel's values and last error across restarts."""

    take: Callable[[Sequence[Inbound]], object]  # services.conversations.take_inbound, with app and clock bound
    load_state: Callable[[str, str], str | None]  # (channel, key) -> value
    save_state: Callable[[str, str, str], None]  # (channel, key, value)
    note_error: Callable[[str, str], None]  # (channel, error; masked again when kept)
    clear_error: Callable[[str], None] | None = None  # (channel): it works again, after an error
    # Events a channel kept to finish later (Lead Ads: a form whose answers are still to be fetched from Meta).
    held: Callable[[str], Mapping[str, str]] | None = None  # channel -> {event id: what was kept}
    release: Callable[[str, str], None] | None = None  # (channel, event id): finished, kept no longer
