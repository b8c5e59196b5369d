"""A throwaway Dovecot (Debian's dovecot-imapd) for the e-mail tests: a config file of its own, mail under a temporary
directory, plain IMAP on a free loopback port, stopped with `doveadm -c FILE stop`. The system's Dovecot service is
never used. Any user name logs in with PASSWORD (a static passdb), so each test takes a fresh, empty mailbox by
taking a fresh name."""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
PASSWORD = "mailbox-Pa55word"

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
mailbox_idle_check_interval = 1 secs
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = 1
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""


def available() -> bool:
    return Path(DOVECOT).exists() and Path(DOVEADM).exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """One instance: start() it, log in with login(user), stop() it."""

    def __init__(self, extra: str = "") -> None:
        # A short path: Dovecot's sockets live under base_dir, and a socket's path may not be long.
        self.root = Path(tempfile.mkdtemp(prefix="lf-dovecot-"))
        self.port = _free_port()
        self.config = self.root / "dovecot.conf"
        # Run as root (the test machine), the mail and the helper processes belong to nobody; otherwise to us.
        account = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self._owner = account
        group = _group_name(account.pw_gid)
        self.config.write_text(CONFIG.format(root=self.root, user=account.pw_name, group=group, uid=account.pw_uid,
                                             gid=account.pw_gid, port=self.port, password=PASSWORD, extra=extra))  # fmt: skip

    def start(self) -> Dovecot:
        (self.root / "mail").mkdir()
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        # Dovecot forks into the background, keeping what it was given as output: a file, so nothing waits on it.
        with open(self.root / "start.log", "wb") as output:
            started = subprocess.run([DOVECOT, "-c", str(self.config)], stdout=output, stderr=output, timeout=30)
        if started.returncode != 0:
            raise RuntimeError(f"Dovecot did not start: {(self.root / 'start.log').read_text(errors='replace')}")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not start; its log: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([DOVEADM, "-c", str(self.config), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)  # fmt: skip
        deadline = time.monotonic() + 10
        while (self.root / "run" / "master.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def login(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(user, PASSWORD)
        return imap

    def append(self, user: str, raw: bytes, mailbox: str = '"INBOX"', *, seen: bool = False) -> None:
        """Deliver a message into a mailbox, as a mail server's delivery agent would (IMAP APPEND)."""
        imap = self.login(user)
        try:
            status, data = imap.append(mailbox, "(\\Seen)" if seen else None, None, raw)
            assert status == "OK", data
        finally:
            imap.logout()


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name
