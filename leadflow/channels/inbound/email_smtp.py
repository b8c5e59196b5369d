"""E-mail by SMTP: a listener (aiosmtpd) the organisation's mail server forwards lead mail to.

It belongs behind the organisation's MX or a forwarding rule, bound where LEADFLOW_CHANNELS__SMTP_LISTEN_HOST says
(loopback by default): it accepts mail for any recipient and relays nothing. Each message is taken (committed)
before it is answered 250, so a crash before the commit leaves the message with the sending server, which delivers
it again; a message that cannot be stored now is answered 451 (try later). A message leadflow cannot read, an
auto-reply or a bounce, is kept as an unreadable event and still answered 250: refusing it would only make the
sending server try again, or bounce it to a sender who cannot fix it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Sequence

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.email import CHANNEL, read_email
from leadflow.channels.inbound.ports import PollerServices
from leadflow.core.conversation import Inbound

log = logging.getLogger("leadflow.channels.email")

ACCEPTED = "250 2.0.0 OK: taken by leadflow"
TRY_LATER = "451 4.3.0 leadflow could not store the message now; try again later"
MAX_BACKOFF = 60.0


class _TakeEachMessage:
    """aiosmtpd's handler: read the message, take it on a thread (the database is blocking), then answer."""

    def __init__(self, take: Callable[[Sequence[Inbound]], object]) -> None:
        self.take = take

    def read_and_take(self, raw: bytes, envelope_sender: str | None) -> None:
        self.take([read_email(raw, envelope_sender=envelope_sender)])

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""  # the bytes as sent (the listener decodes nothing)
        sender = envelope.mail_from if isinstance(envelope.mail_from, str) else None
        sender = "" if sender == "<>" else sender
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.read_and_take, raw, sender)
        except Exception:  # the database is away, say: the sending server keeps the message and tries again
            log.exception("an e-mail could not be stored; answered 451, so the sending server tries again")
            return TRY_LATER
        return ACCEPTED


class SmtpListener:
    """Listens for inbound mail while the worker runs (a Poller: the worker gives it a thread and a stop event)."""

    name = "email-smtp"

    def __init__(self, host: str, port: int, services: PollerServices, ready_timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.services = services
        self.ready_timeout = ready_timeout
        self.listening = threading.Event()  # set while the port is open (tests wait for it)

    def _controller(self) -> Controller:
        # server_hostname: the name in the greeting; without it aiosmtpd asks DNS for this host's full name.
        return Controller(_TakeEachMessage(self.services.take), hostname=self.host, port=self.port,
                          server_hostname=socket.gethostname(), ready_timeout=self.ready_timeout,
                          enable_SMTPUTF8=True)  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            controller = self._controller()
            try:
                controller.start()
            except Exception as exc:  # the port is taken, the address is not this host's...
                controller.stop(no_assert=True)
                problem = (f"cannot listen for e-mail on {self.host}:{self.port}: {type(exc).__name__}: {exc}; check "
                           f"{env_name('smtp_listen_host')} and {env_name('smtp_listen_port')}")  # fmt: skip
                self.services.note_error(CHANNEL, problem)
                log.warning("%s (trying again in %.0f s)", problem, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.listening.set()
            log.info("listening for e-mail on %s:%s", self.host, self.port)
            try:
                stop.wait()
            finally:
                self.listening.clear()
                controller.stop()


def smtp_listener(config: ChannelsConfig, services: PollerServices) -> SmtpListener:
    if config.smtp_listen_port is None:
        raise ValueError(f"the SMTP listener needs a port: set {env_name('smtp_listen_port')}")
    return SmtpListener(config.smtp_listen_host, config.smtp_listen_port, services)
