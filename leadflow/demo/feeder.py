"""Leads for `leadflow serve --demo`: a stream of the demo's Ukrainian leads into intake, so the desk's queues
fill, countdowns run, and leads nobody calls move along the chain while a person watches in the browser."""

from __future__ import annotations

import logging
import random
import threading

from leadflow.core.errors import LeadflowError
from leadflow.demo.leads import LeadFactory
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import receive

log = logging.getLogger("leadflow.demo")
FIRST_LEADS = 6  # at once, so the first page someone opens is not empty


class DemoFeeder:
    """A thread that takes in a demo lead every `pace_seconds` until stopped."""

    def __init__(self, app: Leadflow, pace_seconds: float, seed: int = 7) -> None:
        self.app = app
        self.pace = pace_seconds
        self.factory = LeadFactory(random.Random(seed))
        self.stop = threading.Event()
        self.taken = 0

    def feed_one(self) -> None:
        try:
            receive(self.app, self.factory.next(), utcnow(), sender=("system:demo", None, None))
            self.taken += 1
        except LeadflowError as exc:  # a demo lead intake refuses (the junk samples include one with no contact)
            log.info("demo lead refused: %s", exc)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="leadflow-demo-feeder", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        for _ in range(FIRST_LEADS):
            self.feed_one()
        while not self.stop.wait(self.pace):
            self.feed_one()
