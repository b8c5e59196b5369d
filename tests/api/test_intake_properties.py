"""Random bodies, real HTTP, both databases: no 5xx, every refusal names its field, and every lead that carried a
usable way to reach the client is stored exactly once.

What is sent is random (unicode with NUL and lone surrogates, wrong types, unknown fields, numbers too large for
any column, nesting); whether a lead is usable is known from how it was built, not from leadflow's own code.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import leads
from tests.support import THREE_MANAGERS, admin_headers, live_server

HUGE = "__huge_number__"  # replaced in the body by a 5,000-digit integer (json.dumps cannot write one)
_serial = itertools.count(1)

any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=40)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    any_text, st.just(HUGE),
)  # fmt: skip
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner,
                                                                                               max_size=3), max_leaves=8)  # fmt: skip
LEAD_FIELDS = ["channel", "source", "name", "company", "region", "product", "language", "budget",
               "message", "utm_source", "extra"]  # fmt: skip


@st.composite
def lead_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A body and whether it carries a usable contact (by construction)."""
    n = next(_serial)
    body: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(LEAD_FIELDS), unique=True, max_size=6)):
        body[name] = draw(json_value)
    for _ in range(draw(st.integers(0, 3))):
        body[draw(any_text)] = draw(json_value)  # fields leadflow has no column for
    if draw(st.booleans()):
        # The channel's own id names one delivery: another request with the same one is refused (409), by design.
        body["external_id"] = draw(st.sampled_from([f"ext-{n}", n, f"ext\u0000{n}"]))
    usable = False
    phone = draw(st.sampled_from(["valid", "digits", "garbage", "none"]))
    if phone == "valid":
        body["phone"] = f"+38067{n:07d}"
        usable = True
    elif phone == "digits":
        body["phone"] = int(f"38050{n:07d}")  # a number, as some integrations send it
        usable = True
    elif phone == "garbage":
        body["phone"] = draw(any_text | st.integers())
    email = draw(st.sampled_from(["valid", "garbage", "none"]))
    if email == "valid":
        body["email"] = f"client{n}@example.com"
        usable = True
    elif email == "garbage":
        body["email"] = draw(any_text)
    if draw(st.booleans()):
        body["messenger_id"] = f"tg{n}"
        usable = True
    return body, usable


def json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).replace(json.dumps(HUGE), "9" * 5000).encode()


def form_bytes(body: dict[str, Any]) -> bytes:
    def enc(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return quote_from_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates become invalid UTF-8

    return "&".join(f"{enc(k)}={enc(v)}" for k, v in body.items()).encode()


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def stored_with_key(lf: Leadflow, key: str) -> int:
    with lf.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(leads.c.idempotency_key == key)).scalar_one())


def check_refusal(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        body = r.json()
        assert body["error"] and body["message"], body
        if r.status_code == 422:
            assert body["problems"] and all(p["field"] and p["reason"] for p in body["problems"]), body


HYPOTHESIS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HYPOTHESIS
@given(case=lead_bodies(), as_form=st.booleans())
def test_random_leads_are_kept_exactly_once_or_refused_with_a_named_field(
    api: httpx.Client, lf: Leadflow, case: tuple[dict[str, Any], bool], as_form: bool
) -> None:
    body, usable = case
    key = f"prop-{next(_serial)}"
    kind = "application/x-www-form-urlencoded" if as_form else "application/json"
    content = form_bytes(body) if as_form else json_bytes(body)
    headers = {"content-type": kind, "Idempotency-Key": key}
    first = api.post("/api/v1/leads", content=content, headers=headers)
    check_refusal(first)
    if usable:
        assert first.status_code == 201, first.text
    again = api.post("/api/v1/leads", content=content, headers=headers)
    check_refusal(again)
    if first.status_code == 201:
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert stored_with_key(lf, key) == 1
    else:
        assert again.status_code == first.status_code and stored_with_key(lf, key) == 0


@pytest.fixture
def routes(lf: Leadflow) -> list[tuple[str, str]]:
    """Every write operation the API documents."""
    from leadflow.api.app import create_api
    from leadflow.settings import Settings

    paths = create_api(lf, Settings()).openapi()["paths"]
    return [(m.upper(), p) for p, ops in sorted(paths.items()) for m in ops if m in ("post", "patch", "put", "delete")]


path_value = st.one_of(st.sampled_from(["1", "2", "anna", "sales", "0", "-1", "9223372036854775808"]), any_text)


@HYPOTHESIS
@given(data=st.data())
def test_every_write_route_answers_random_bodies_without_a_server_error(
    api: httpx.Client, lf: Leadflow, routes: list[tuple[str, str]], data: st.DataObject
) -> None:
    api.post("/api/v1/leads", json={"name": "Seed", "phone": "+380671110000"})  # something to act on
    method, path = data.draw(st.sampled_from(routes))
    for name in [p[1:-1] for p in path.split("/") if p.startswith("{")]:
        value = data.draw(path_value)
        path = path.replace("{" + name + "}", quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe=""))
    body = data.draw(st.dictionaries(st.sampled_from(["manager", "kind", "outcome", "status", "reason", "name",
                                                      "team", "capacity", "key", "note", "to", "actor"]) | any_text,
                                     json_value, max_size=5))  # fmt: skip
    r = api.request(method, path, content=json_bytes(body), headers={"content-type": "application/json"})
    check_refusal(r)
