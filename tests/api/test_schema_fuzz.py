"""Every operation of the OpenAPI document, fuzzed by schemathesis against the app, on SQLite and PostgreSQL.

Each operation gets valid and invalid requests generated from its schema (a fixed number, derandomized, so a run
is repeatable and takes about a minute), and every answer is checked: no server error, a declared status, the
declared content type, headers and body schema, and valid data accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine, create_engine

from leadflow.api.app import create_api
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from tests.conftest import load_app
from tests.support import THREE_MANAGERS, admin_headers

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
]
# Checks that do not hold for an operation, each with the reason.
# Values the rules file or the database decide (which statuses the funnel has, which teams and managers exist,
# working hours and time zones read by the schedule parser, which outcome fits which kind of contact) are valid
# by the schema and still refused with 422: the document cannot know them.
_RULES_DECIDE = [positive_data_acceptance]
EXCLUDED: dict[tuple[str, str], list[Callable[..., Any]]] = {
    ("GET", "/api/v1/leads"): _RULES_DECIDE,  # status: one of the funnel's
    ("POST", "/api/v1/leads/{lead_id}/status"): _RULES_DECIDE,  # status: one of the funnel's
    ("POST", "/api/v1/leads/{lead_id}/contact"): _RULES_DECIDE,  # manager: must exist; outcome: must fit the kind
    ("POST", "/api/v1/managers"): _RULES_DECIDE,  # team: must exist; hours: parsed by the schedule
    ("PATCH", "/api/v1/managers/{key}"): _RULES_DECIDE,  # team, hours; an explicit null for a required value
    ("POST", "/api/v1/teams"): _RULES_DECIDE,  # timezone: an IANA name; hours
    ("PATCH", "/api/v1/teams/{key}"): _RULES_DECIDE,  # timezone, hours
    # A lead the schema allows is refused when nothing in it reaches the client (no valid phone, e-mail or
    # messenger id): the values decide, as they do for a person typing a form.
    ("POST", "/api/v1/desk/{lead_id}/junk"): _RULES_DECIDE,  # a reason of only blanks says nothing
    ("POST", "/api/v1/users"): _RULES_DECIDE,  # the teams and the manager named must exist
    ("POST", "/api/v1/api-keys"): _RULES_DECIDE,  # origins and rate limits are for intake keys only
    ("GET", "/api/v1/tasks"): _RULES_DECIDE,  # manager: must exist; overdue: only of open tasks
    ("POST", "/api/v1/tasks"): _RULES_DECIDE,  # the lead and the manager must exist, who must see the lead
    ("POST", "/api/v1/tasks/{task_id}/reassign"): _RULES_DECIDE,  # manager: must exist and see the lead
    ("POST", "/api/v1/tasks/{task_id}/cancel"): _RULES_DECIDE,  # a reason of only blanks says nothing
    # Reports: the teams and managers named must exist, a period may not end before it starts nor pass 400 days, a
    # plan's team or manager must exist, and a CSV of costs must have a day and an amount on every line.
    ("GET", "/api/v1/reports/{name}"): _RULES_DECIDE,
    ("GET", "/api/v1/reports/costs"): _RULES_DECIDE,
    ("POST", "/api/v1/reports/costs"): _RULES_DECIDE,
    ("GET", "/api/v1/reports/plans"): _RULES_DECIDE,
    ("PUT", "/api/v1/reports/plans/{scope}/{month}"): _RULES_DECIDE,
    # A client event's `data` may hold any JSON, but no key or text with a control character (which text cannot
    # hold): the schema cannot say that of a free-form object's keys.
    ("POST", "/api/v1/events"): _RULES_DECIDE,
    ("POST", "/api/v1/leads"): [positive_data_acceptance],
    ("POST", "/api/v1/leads/dry-run"): [positive_data_acceptance],
}
MAX_EXAMPLES = int(os.environ.get("LEADFLOW_FUZZ_EXAMPLES", "15"))


def _operations() -> list[tuple[str, str]]:
    # The document does not depend on the database: an empty in-memory one is enough to list the operations.
    rules = parse_rules(THREE_MANAGERS, "fuzz-rules.yaml")
    api = create_api(Leadflow(engine=create_engine("sqlite://"), rules=rules), Settings())
    return [(method.upper(), path) for path, item in api.openapi()["paths"].items() for method in item]


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: str(v))
def test_operation(engine: Engine, method: str, path: str) -> None:
    config = Settings(allowed_hosts=["testserver"])  # the host schemathesis's ASGI client sends
    lf = load_app(engine, parse_rules(THREE_MANAGERS, "fuzz-rules.yaml"))
    api = create_api(lf, config)
    headers = admin_headers(lf)  # as an admin key: every route answers past authentication
    operation = schemathesis.openapi.from_asgi("/openapi.json", api)[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    excluded = EXCLUDED.get((method, path), [])

    @settings(
        max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(case=cases)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=[c for c in CHECKS if c not in excluded])

    check()
