"""The worker: acts on passed first-contact deadlines, runs the automations, queues the daily digests and delivers
the outbox. Every bit of state is in the database.

On SQLite one worker runs (inside `leadflow serve` by default). On PostgreSQL any number run on any hosts: each
claims its deadlines with SKIP LOCKED, so each escalation happens exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from leadflow.channels.inbound.ports import Poller
from leadflow.channels.inbound.registry import ReplySender, pollers_from_config, repliers_from_config
from leadflow.channels.redact import hide_in_logs, secrets_of
from leadflow.channels.senders import Sender, senders_from_config
from leadflow.services.automation import fire_due, next_timer_at, process_events, run_once
from leadflow.services.channel_state import poller_services
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.health import NotificationReach, check_notifications
from leadflow.services.reports.digest import send_due_digests
from leadflow.services.sla import escalate_due, next_due_at

log = logging.getLogger("leadflow.worker")

DIGEST_SECONDS = 60.0  # how often the worker looks for a head of sales whose daily digest is due


class Worker:
    def __init__(
        self,
        app: Leadflow,
        *,
        poll_seconds: float = 0.25,
        batch: int = 100,
        senders: Mapping[str, Sender] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app = app
        # Before the first send: the HTTP client logs the URLs it posts to, and the Telegram token is in one.
        slack = [t.slack_webhook_url for t in app.rules.teams if t.slack_webhook_url]
        self.channel_secrets = app.channels.secrets()  # replies go out with them: masked in what a failure keeps
        hide_in_logs(secrets_of(app.notify, slack) | self.channel_secrets)
        self.poll_seconds = poll_seconds
        self.batch = batch
        if senders is None:
            senders = {**senders_from_config(app.notify),
                       "reply": ReplySender(repliers_from_config(app.channels, app.notify))}  # fmt: skip
        self.senders = senders
        # Channels asked rather than calling (Telegram's getUpdates, an IMAP mailbox): a loop each.
        self.pollers: list[Poller] = pollers_from_config(app.channels, poller_services(app, clock))
        self.clock = clock
        self.stop = threading.Event()
        self.escalated = 0

    def notification_reach(self) -> NotificationReach:
        """Where this worker's notifications would go, with a warning when they would reach no one."""
        return check_notifications(self.app, channels=tuple(self.senders))

    def drain(self, attempts: int = 5) -> int:
        """Escalate everything due now; returns how many leads moved. A failed round is retried."""
        total = 0
        failures = 0
        while True:
            try:
                moved = escalate_due(self.app, self.clock(), self.batch)
            except Exception:
                failures += 1
                if failures >= attempts:
                    raise
                log.exception("escalation round failed; retrying")
                self.stop.wait(0.2)
                continue
            total += moved
            if moved == 0:
                return total

    def drain_automations(self) -> tuple[int, int, int]:
        """Read every waiting event and fire every due timer now; returns (events read, triggers fired, timers)."""
        done = run_once(self.app, self.clock(), self.batch)
        return done.events, done.fired, done.timers

    def run_escalations(self) -> None:
        """Until stopped: act on due deadlines, then sleep until the next one (never longer than the poll)."""
        # SQLite has one writer at a time and no queue: a waiting intake polls for the lock, and a worker that takes
        # it again at once would keep winning through a whole burst. Between full batches it steps aside for as
        # long as the batch held the lock.
        yields = self.app.engine.dialect.name == "sqlite"
        while not self.stop.is_set():
            try:
                started = time.monotonic()
                moved = escalate_due(self.app, self.clock(), self.batch)
                self.escalated += moved
                if moved:
                    if yields:
                        self.stop.wait(min(time.monotonic() - started, 0.05))
                    continue  # more may be due; the burst is cleared before sleeping
                upcoming = next_due_at(self.app)
            except Exception:  # the database may be restarting: say so, wait, try again
                log.exception("escalation round failed; retrying in 1 s")
                self.stop.wait(1.0)
                continue
            self._sleep_until(upcoming)

    def run_automations(self) -> None:
        """Until stopped: read new events and fire the triggers, then the due delayed actions and overdue tasks."""
        yields = self.app.engine.dialect.name == "sqlite"
        # On SQLite a round holds the one write lock intake needs: short rounds, with intake's turn between them.
        events = self.batch * 5
        # A round holds the leads it reads (on SQLite, the one write lock): a manager recording a call on one of them
        # waits for the round, so a round ends after this long and the rest wait for the next.
        budget = 0.01 if yields else 0.1
        while not self.stop.is_set():
            try:
                started = time.monotonic()
                read = process_events(self.app, self.clock(), limit=events, budget=budget)
                timed = fire_due(self.app, self.clock(), limit=self.batch)
                if read.events or timed.timers:
                    if yields:  # as the escalations do: intake's writer gets its turn between rounds
                        self.stop.wait(min(time.monotonic() - started, 0.05))
                    continue  # more may be waiting
                upcoming = next_timer_at(self.app)
            except Exception:
                log.exception("automation round failed; retrying in 1 s")
                self.stop.wait(1.0)
                continue
            self._sleep_until(upcoming)

    def _sleep_until(self, upcoming: datetime | None) -> None:
        """Until the next thing is due, never longer than the poll."""
        wait = self.poll_seconds
        if upcoming is not None:
            wait = min(wait, max((upcoming - self.clock()).total_seconds(), 0.0))
        self.stop.wait(wait)

    def run_deliveries(self) -> None:
        while not self.stop.is_set():
            try:
                report = deliver_due(
                    self.app.engine, self.senders, self.app.notify, self.clock(), secrets=self.channel_secrets
                )
            except Exception:
                log.exception("delivery round failed; retrying in 1 s")
                self.stop.wait(1.0)
                continue
            if not report.handled:
                self.stop.wait(self.poll_seconds * 2)

    def run_digests(self) -> None:
        """Until stopped: once a minute, queue the daily digests that are due (reports.digest in the rules)."""
        while not self.stop.is_set():
            try:
                send_due_digests(self.app, self.clock())
            except Exception:
                log.exception("daily digest round failed; trying again in a minute")
            self.stop.wait(DIGEST_SECONDS)

    def start(self) -> list[threading.Thread]:
        """Run the loops in daemon threads (used by `leadflow serve` and the tests)."""
        threads = [
            threading.Thread(target=self.run_escalations, name="leadflow-escalations", daemon=True),
            threading.Thread(target=self.run_deliveries, name="leadflow-deliveries", daemon=True),
            threading.Thread(target=self.run_automations, name="leadflow-automations", daemon=True),
            threading.Thread(target=self.run_digests, name="leadflow-digests", daemon=True),
            *(threading.Thread(target=p.run, args=(self.stop,), name=f"leadflow-{p.name}", daemon=True)
              for p in self.pollers),
        ]  # fmt: skip
        for t in threads:
            t.start()
        return threads
