"""Users, their passwords and sessions, in the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from leadflow.core.errors import InvalidInput, TooManyRequests
from leadflow.core.policy import SYSTEM
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.tables import events, login_failures, users
from tests.support import THREE_MANAGERS

STRONGER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


def _sign_in(lf: Leadflow, username: str, password: str) -> accounts.NewSession:
    with lf.engine.begin() as conn:
        return accounts.sign_in(conn, accounts.key_secret(conn), username, password, utcnow(), address="10.0.0.7",
                                user_agent="test", throttle=accounts.Throttle(), times=accounts.SessionTimes())  # fmt: skip


def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in(
    lf: Leadflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    with lf.engine.begin() as conn:
        accounts.create_user(conn, "anna", "first password", utcnow(), role="manager", manager="anna", actor=SYSTEM)
        before = conn.execute(select(users.c.password_hash)).scalar_one()
    assert before.startswith("$argon2id$") and "t=1" in before
    monkeypatch.setattr(accounts, "_hasher", STRONGER)  # the parameters changed since
    _sign_in(lf, "anna", "first password")
    with lf.engine.connect() as conn:
        after = conn.execute(select(users.c.password_hash)).scalar_one()
    assert after != before and "m=16,t=2,p=1" in after and not STRONGER.check_needs_rehash(after)
    _sign_in(lf, "anna", "first password")  # the new hash checks out


def test_short_passwords_and_bad_roles_are_refused_and_nothing_is_stored(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        with pytest.raises(InvalidInput, match="shorter than 10"):
            accounts.create_user(conn, "anna", "short", utcnow(), role="admin", actor=SYSTEM)
        with pytest.raises(InvalidInput, match="one of admin, head, desk, manager"):
            accounts.create_user(conn, "anna", "long enough pw", utcnow(), role="owner", actor=SYSTEM)
        with pytest.raises(InvalidInput, match="no team 'north'"):
            accounts.create_user(conn, "anna", "long enough pw", utcnow(), role="head", teams_=["north"], actor=SYSTEM)
        assert conn.execute(select(func.count()).select_from(users)).scalar_one() == 0


def test_failures_are_counted_per_account_and_lift_after_the_window(lf: Leadflow) -> None:
    with lf.engine.begin() as conn:
        accounts.create_user(conn, "anna", "first password", utcnow(), role="admin", actor=SYSTEM)
    throttle = accounts.Throttle(window=timedelta(minutes=15), per_account=2, per_address=100)
    now = utcnow()
    with lf.engine.begin() as conn:
        for _ in range(2):
            accounts.record_failure(conn, "Anna", "10.0.0.7", now, throttle)
    with lf.engine.begin() as conn, pytest.raises(TooManyRequests) as locked:
        accounts.sign_in(conn, accounts.key_secret(conn), "anna", "first password", now, address="10.0.0.8",
                         user_agent=None, throttle=throttle, times=accounts.SessionTimes())  # fmt: skip
    assert 0 < locked.value.retry_after <= 15 * 60 + 1
    later = now + timedelta(minutes=16)
    with lf.engine.begin() as conn:
        session = accounts.sign_in(conn, accounts.key_secret(conn), "anna", "first password", later,
                                   address="10.0.0.8", user_agent=None, throttle=throttle,
                                   times=accounts.SessionTimes())  # fmt: skip
        assert session.token.startswith("lfs_")
        assert conn.execute(select(func.count()).select_from(login_failures)).scalar_one() == 0  # success clears
        signed = conn.execute(select(events.c.actor, events.c.address).where(events.c.type == "user.signed_in")).all()
    assert [tuple(r) for r in signed] == [("user:anna", "10.0.0.8")]
