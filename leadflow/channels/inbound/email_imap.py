"""E-mail by IMAP: a mailbox leadflow looks into for new mail, and waits on with IDLE where the server has it.

The mailbox is opened read-only (EXAMINE) and messages are fetched with BODY.PEEK, so leadflow changes nothing in it:
people may read the same mailbox. What was taken is remembered by UID, with the mailbox's UIDVALIDITY, in the
database: a restart goes on after the last message taken. A new UIDVALIDITY (the mailbox was recreated or rebuilt:
its old UIDs mean nothing now) starts over from the messages not yet seen (\\Seen unset), as the first start does;
the dedupe by Message-ID keeps out any taken before. A message is remembered only after it was taken, so a crash in
between takes it again, and the dedupe drops the repeat.

With IDLE (RFC 2177) new mail arrives within a second or two; without it the mailbox is looked into every
LEADFLOW_CHANNELS__IMAP_POLL_SECONDS. Failures (a refused login, a lost connection) are logged and kept as the
channel's last error, then retried with a growing pause. The password is never in either.
"""

from __future__ import annotations

import base64
import imaplib
import itertools
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.email import CHANNEL, read_email
from leadflow.channels.inbound.ports import PollerServices
from leadflow.core.conversation import Inbound

log = logging.getLogger("leadflow.channels.email")

POSITION_KEY = "imap_position"
BATCH = 25  # messages taken in one transaction
IDLE_SECONDS = 300.0  # IDLE is renewed this often (RFC 2177: servers may drop an IDLE left for 30 minutes)
TIMEOUT_SECONDS = 30.0  # per network operation
MAX_BACKOFF = 300.0
_EXISTS = re.compile(rb"^\* \d+ EXISTS", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_tags = itertools.count(1)


class ImapError(Exception):
    """The mailbox could not be read; the message says why and what to set, and never holds the password."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far the mailbox was taken: the last UID, valid while the mailbox keeps its UIDVALIDITY."""

    mailbox: str
    uidvalidity: int
    uid: int

    def dump(self) -> str:
        return json.dumps({"mailbox": self.mailbox, "uidvalidity": self.uidvalidity, "uid": self.uid})

    @classmethod
    def load(cls, text: str | None) -> Position | None:
        try:
            value = json.loads(text or "")
            return cls(str(value["mailbox"]), int(value["uidvalidity"]), int(value["uid"]))
        except (ValueError, KeyError, TypeError):
            return None  # nothing kept (the first start), or from another version: start as the first time


Connect = Callable[[ChannelsConfig], imaplib.IMAP4]


class ImapPoller:
    """Takes new mail from one IMAP mailbox until the worker stops (a Poller)."""

    name = "email-imap"

    def __init__(self, config: ChannelsConfig, services: PollerServices, *, idle_seconds: float = IDLE_SECONDS,
                 connect: Connect | None = None, ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        if not (config.imap_host and config.imap_username and config.imap_password):
            raise ValueError(f"IMAP needs a host and a login: set {env_name('imap_host')}, "
                             f"{env_name('imap_username')} and {env_name('imap_password')}")  # fmt: skip
        self.config = config
        self.services = services
        self.idle_seconds = idle_seconds
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.connect = connect or self._connect
        self.where = f"the IMAP server {config.imap_host}:{config.imap_port}"
        self.sessions = 0  # logins that got as far as opening the mailbox, counted

    # -- One session ------------------------------------------------------------------------------------------------

    def _connect(self, config: ChannelsConfig) -> imaplib.IMAP4:
        host, port = str(config.imap_host), config.imap_port
        if config.imap_ssl:
            return imaplib.IMAP4_SSL(host, port, ssl_context=self.ssl_context, timeout=TIMEOUT_SECONDS)
        imap = imaplib.IMAP4(host, port, timeout=TIMEOUT_SECONDS)
        if "STARTTLS" in imap.capabilities:
            imap.starttls(self.ssl_context)
        return imap

    @contextmanager
    def session(self) -> Iterator[tuple[imaplib.IMAP4, int, bool]]:
        """Connected, logged in, the mailbox open read-only: (the connection, its UIDVALIDITY, whether it has IDLE)."""
        try:
            imap = self.connect(self.config)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(f"could not reach {self.where}: {type(exc).__name__}: {exc}") from None
        try:
            self._login(imap)
            uidvalidity = self._examine(imap)
            capabilities = _capabilities(imap)
            self.sessions += 1
            yield imap, uidvalidity, "IDLE" in capabilities
        finally:
            with suppress(OSError, imaplib.IMAP4.error):  # the connection may be gone already
                imap.logout()

    def _login(self, imap: imaplib.IMAP4) -> None:
        user, password = str(self.config.imap_username), self.config.imap_password
        secret = password.get_secret_value() if password is not None else ""
        try:
            if secret.isascii():
                imap.login(user, secret)
            else:  # LOGIN is ASCII only; AUTHENTICATE PLAIN carries UTF-8
                imap.authenticate("PLAIN", lambda _: f"\0{user}\0{secret}".encode())
        except imaplib.IMAP4.error as exc:
            detail = _said(exc).replace(secret, "***") if secret else _said(exc)
            hint = (f"; the server takes no password over an unencrypted connection: set {env_name('imap_ssl')}=true"
                    if "LOGINDISABLED" in imap.capabilities else
                    f": check {env_name('imap_username')} and {env_name('imap_password')}")  # fmt: skip
            raise ImapError(f"{self.where} refused the login for {user!r} ({detail}){hint}") from None

    def _examine(self, imap: imaplib.IMAP4) -> int:
        mailbox = self.config.imap_mailbox
        status, data = imap.select(mailbox_name(mailbox), readonly=True)
        if status != "OK":
            raise ImapError(f"{self.where} has no mailbox {mailbox!r} ({_said(data)}): check "
                            f"{env_name('imap_mailbox')}")  # fmt: skip
        _, values = imap.response("UIDVALIDITY")
        if not values or values[0] is None:
            raise ImapError(f"{self.where} gave no UIDVALIDITY for {mailbox!r}; leadflow cannot follow it")
        return int(values[0])

    # -- Taking new mail --------------------------------------------------------------------------------------------

    def take_new(self, imap: imaplib.IMAP4, uidvalidity: int) -> int:
        """Take the messages not taken yet; returns how many were taken."""
        mailbox = self.config.imap_mailbox
        known = Position.load(self.services.load_state(CHANNEL, POSITION_KEY))
        if known is None or known.mailbox != mailbox or known.uidvalidity != uidvalidity:
            return self._start_over(imap, Position(mailbox, uidvalidity, 0))
        uids = [uid for uid in _search(imap, f"UID {known.uid + 1}:*") if uid > known.uid]  # n:* includes the last
        for batch in _batches(uids):
            self._take(imap, batch)
            self._remember(Position(mailbox, uidvalidity, batch[-1]))
        return len(uids)

    def _start_over(self, imap: imaplib.IMAP4, position: Position) -> int:
        # The newest UID first: a message arriving meanwhile is newer, unseen, and taken by this round or the next.
        newest = max(_search(imap, "UID *"), default=0)
        unseen = _search(imap, "UNSEEN")
        for batch in _batches(unseen):
            self._take(imap, batch)
        # Remembered only once all are taken: a crash before starts over again (the dedupe drops the repeats).
        self._remember(Position(position.mailbox, position.uidvalidity, max([newest, *unseen])))
        return len(unseen)

    def _take(self, imap: imaplib.IMAP4, uids: Sequence[int]) -> None:
        items: list[Inbound] = []
        for uid in uids:
            raw = _fetch(imap, uid)
            if raw is not None:  # None: deleted since the search
                items.append(read_email(raw))
        if items:
            self.services.take(items)

    def _remember(self, position: Position) -> None:
        self.services.save_state(CHANNEL, POSITION_KEY, position.dump())

    # -- The loop -----------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                with self.session() as (imap, uidvalidity, has_idle):
                    if backoff > 1.0 and self.services.clear_error is not None:
                        self.services.clear_error(CHANNEL)  # signed in again: the error shown is no longer true
                    backoff = 1.0
                    self._follow(imap, uidvalidity, has_idle, stop)
                continue
            except ImapError as exc:
                problem = str(exc)
            except (OSError, imaplib.IMAP4.error) as exc:  # the connection was lost, the server said BYE...
                problem = f"lost {self.where}: {type(exc).__name__}: {_said(exc)}"
            except Exception as exc:  # a database error while taking: the same messages are taken again later
                log.exception("reading %s failed", self.where)
                problem = f"reading {self.where} failed: {type(exc).__name__}: {exc}"
            self.services.note_error(CHANNEL, problem)
            log.warning("%s (trying again in %.0f s)", problem, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _follow(self, imap: imaplib.IMAP4, uidvalidity: int, has_idle: bool, stop: threading.Event) -> None:
        """Take new mail and wait for more, in one session, until stopped. Without IDLE the session ends after each
        look, so a server that drops quiet connections is not talked to between looks."""
        while not stop.is_set():
            imap.untagged_responses.clear()  # imaplib keeps what it was not asked for, and a session lasts days
            self.take_new(imap, uidvalidity)
            if not has_idle:
                stop.wait(self.config.imap_poll_seconds)
                return
            idle(imap, stop, self.idle_seconds)


def imap_poller(config: ChannelsConfig, services: PollerServices) -> ImapPoller:
    return ImapPoller(config, services)


# -- IMAP details ---------------------------------------------------------------------------------------------------


def idle(imap: imaplib.IMAP4, stop: threading.Event, seconds: float, tick: float = 0.5) -> bool:
    """Wait in IDLE (RFC 2177) until the server tells of new mail (`* n EXISTS`), `seconds` pass or `stop` is set;
    True when new mail was announced. imaplib (before Python 3.14) has no IDLE, so the lines are read here, straight
    from the socket with short time-outs (checking `stop` between them); imaplib's own buffer is empty at this point,
    as every command before has been read to its tagged answer."""
    tag = f"LF{next(_tags)}".encode()
    sock = imap.sock
    saved_timeout = sock.gettimeout()
    lines = _Lines(sock)
    try:
        imap.send(tag + b" IDLE\r\n")
        new_mail = False
        while True:  # the go-ahead ("+ idling"), or a refusal
            line = lines.read(TIMEOUT_SECONDS)
            if line is None:
                raise imaplib.IMAP4.abort("no answer to IDLE")
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                raise imaplib.IMAP4.error(f"IDLE refused: {line.decode('utf-8', 'replace')}")
            new_mail = new_mail or bool(_EXISTS.match(line))
        deadline = time.monotonic() + seconds
        while not new_mail and not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            line = lines.read(min(tick, left))
            if line is None:
                continue
            if line.upper().startswith(b"* BYE"):
                raise imaplib.IMAP4.abort(line.decode("utf-8", "replace"))
            new_mail = bool(_EXISTS.match(line))
        imap.send(b"DONE\r\n")
        while True:  # until IDLE's own tagged answer
            line = lines.read(TIMEOUT_SECONDS)
            if line is None:
                raise imaplib.IMAP4.abort("no answer to DONE")
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                    raise imaplib.IMAP4.error(f"IDLE ended badly: {line.decode('utf-8', 'replace')}")
                return new_mail
            new_mail = new_mail or bool(_EXISTS.match(line))
    finally:
        sock.settimeout(saved_timeout)


class _Lines:
    """CRLF-ended lines from a socket, each read waiting at most a given time (None: nothing came in time)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self, wait: float) -> bytes | None:
        while b"\r\n" not in self.buffer:
            self.sock.settimeout(max(wait, 0.01))
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                return None
            if not chunk:
                raise imaplib.IMAP4.abort("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line


def mailbox_name(name: str) -> str:
    """A mailbox name as IMAP wants it: non-ASCII in modified UTF-7 (RFC 3501 5.1.3), quoted."""
    encoded: list[str] = []
    pending = ""
    for ch in [*name, None]:
        if ch is not None and not (" " <= ch <= "~"):
            pending += ch
            continue
        if pending:
            data = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            encoded.append(f"&{data}-")
            pending = ""
        if ch is not None:
            encoded.append("&-" if ch == "&" else ch)
    text = "".join(encoded)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _capabilities(imap: imaplib.IMAP4) -> set[str]:
    # Asked again after the login: a server may offer more (IDLE among them) once it knows who is asking.
    known = {c.upper() for c in imap.capabilities}
    status, data = imap.capability()
    if status != "OK":
        return known
    return known | set(b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace").upper().split())


def _search(imap: imaplib.IMAP4, criteria: str) -> list[int]:
    status, data = imap.uid("SEARCH", criteria)
    if status != "OK":
        raise ImapError(f"the IMAP server refused a search ({_said(data)})")
    return sorted({int(n) for d in data if isinstance(d, bytes) for n in d.split()})


def _fetch(imap: imaplib.IMAP4, uid: int) -> bytes | None:
    status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
    if status != "OK":
        raise ImapError(f"the IMAP server refused to give message {uid} ({_said(data)})")
    for part in data:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            found = _UID.search(part[0])
            if found is None or int(found.group(1)) == uid:
                return part[1]
    return None


def _batches(uids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(uids), BATCH):
        yield uids[start : start + BATCH]


def _said(what: object) -> str:
    """What the server said, as text (imaplib hands its words over as bytes, often in a list)."""
    if isinstance(what, BaseException) and what.args:
        what = what.args[0]
    if isinstance(what, list):
        what = b" ".join(w for w in what if isinstance(w, bytes))
    if isinstance(what, bytes):
        return what.decode("utf-8", "replace")
    return str(what)
