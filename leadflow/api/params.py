"""What a request may carry: ids and offsets within the columns' range, text without control characters, times
with a zone; and the route class that reads JSON bodies before FastAPI does.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.params import Form
from fastapi.routing import APIRoute
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, TypeAdapter
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from leadflow.core.errors import InvalidInput
from leadflow.core.fields import CLEAN_TEXT_PATTERN
from leadflow.core.rules import Key
from leadflow.core.text import MAX_DEPTH

MAX_ID = 2**63 - 1  # ids, counts and offsets are 64-bit signed integers on SQLite and PostgreSQL
# How managers, teams, rules and statuses are named, as the rules file's schema says.
KEY_PATTERN: str = TypeAdapter(Key).json_schema()["pattern"]

LeadId = Annotated[int, Path(ge=1, le=MAX_ID, description="The lead's id.")]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="The outbox message's id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="How many items of the list to skip.")]
ManagerKey = Annotated[str, Path(min_length=1, max_length=60, pattern=KEY_PATTERN, description="The manager's key.")]
TeamKey = Annotated[str, Path(min_length=1, max_length=60, pattern=KEY_PATTERN, description="The team's key.")]
TextFilter = Annotated[str | None, Query(min_length=1, max_length=200, pattern=CLEAN_TEXT_PATTERN)]


def key_query(description: str) -> Any:
    """A query filter that names something by its key (a manager, a team, a status)."""
    return Query(min_length=1, max_length=60, pattern=KEY_PATTERN, description=description)


_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?([Zz]|[+-]\d\d:?\d\d)")
_ISO_HINT = "give an ISO 8601 date-time with a time zone, like 2026-11-23T10:00:00Z or 2026-11-23T12:00:00+02:00"


def _iso_text(value: Any) -> Any:
    # Pydantic would also take a number (as unix time) or a time without a zone; a filter must say what it means.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_TIME.fullmatch(value)):
        return value
    raise PydanticCustomError("iso_datetime", _ISO_HINT)


def _storable(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-23:59 is a valid time that no database column holds: it is past year 9999 in UTC.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "the time is out of range: years 1 to 9999 in UTC") from None


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_storable)]


class LeadflowRoute(APIRoute):
    """A route that reads its JSON body itself before FastAPI's request handler does.

    FastAPI 0.16x reads the body in `get_request_handler` (fastapi/routing.py) with Starlette's `Request.json()`:
    a JSONDecodeError there becomes a 422 whose field is a character offset ("JSON decode error (field: 11)"), and
    anything else `json.loads` raises (RecursionError for a body nested thousands of levels deep, ValueError for an
    integer longer than Python's int digit limit) becomes a bare 400. Reading the body here first, on the same
    Request (which keeps the parsed value, so FastAPI does not parse it again), answers each with 422 and a
    sentence; a body sent as another content type is answered 415. Every router whose routes take JSON bodies
    uses this class (a test checks it).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, Form):
            return handler
        # Who is asking is settled before the body is looked at: a stranger learns nothing from a 422.
        check = next((d.call for d in self.dependant.dependencies if hasattr(d.call, "leadflow_action")), None)

        async def read_json_first(request: Request) -> Response:
            if check is not None:
                await check(request)
            await read_json_body(request)
            return await handler(request)

        return read_json_first


async def read_json_body(request: Request) -> None:
    """Parse a JSON body into the request's cache; refuse other types, bad JSON and deep nesting in words."""
    body = await request.body()
    if not body:
        return  # FastAPI answers that the body is missing, naming it
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (
        content_type == "application/json"
        or (content_type.startswith("application/") and content_type.endswith("+json"))
    ):
        shown = content_type or "none"
        raise HTTPException(415, f"content type '{shown}' is not accepted here: send application/json")
    try:
        value = await request.json()
    except json.JSONDecodeError as exc:
        message = f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidInput.one("body", message) from None
    except UnicodeDecodeError:
        raise InvalidInput.one("body", "the body is not UTF-8 text") from None
    except RecursionError:
        raise InvalidInput.one("body", f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # the only other error json.loads raises: an integer past the digit limit
        limit = sys.get_int_max_str_digits()
        raise InvalidInput.one("body", f"the body has a number longer than {limit} digits") from None
    if _deeper_than(value, MAX_DEPTH):
        raise InvalidInput.one("body", f"the body is nested more than {MAX_DEPTH} levels deep")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels deep (looked at level by level, not recursively)."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [child for item in level for child in _children(item)]
        if not level:
            return False
    return True


def _children(item: Any) -> list[Any]:
    if isinstance(item, dict):
        return list(item.values())
    return item if isinstance(item, list) else []
