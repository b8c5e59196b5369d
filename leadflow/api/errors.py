"""Every error answer has one shape: {"error": code, "message": text, "problems": [{field, reason}]}.

`error_response` makes every one of them, so a visitor's browser gets the same answer as a page in its language.
"""

from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow.api.deadline import Deadline
from leadflow.api.params import KEY_PATTERN
from leadflow.api.schemas import ErrorOut
from leadflow.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from leadflow.core.rules_text import RulesError
from leadflow.core.text import unsafe_character
from leadflow.services.accounts import SignInRefused
from leadflow.web.i18n import pick_language
from leadflow.web.pages import error_page
from leadflow.web.viewer import PAGE_FLAG

log = logging.getLogger("leadflow.api")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadflow"'}

_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 429: "too_many_requests", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 413: "too_large",
          415: "unsupported_media_type", 422: "invalid_input", 500: "internal"}  # fmt: skip


def error_body(code: str, message: str, problems: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "problems": problems or []}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    problems: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    reference: str | None = None,
) -> Response:
    """The error as JSON; as a page in the visitor's language when a browser asked (it prefers HTML to JSON), or
    in a page's own way on the desk's pages (web/refusals.py)."""
    if request.scope.get(PAGE_FLAG):
        from leadflow.web.refusals import page_error  # the pages depend on the API's pieces, not the other way

        return page_error(request, status, message, problems or [], headers)
    if prefers_html(request.headers.get("accept", "")):
        language = pick_language(request.headers.get("accept-language"))
        page = error_page(language, status, message, problems or [], reference)
        return HTMLResponse(page, status_code=status, headers=headers)
    return JSONResponse(error_body(code, message, problems), status_code=status, headers=headers)


def prefers_html(accept: str) -> bool:
    """True when the Accept header rates HTML above JSON (a browser's does; `*/*` and API clients' do not)."""
    html = json = wildcard = 0.0
    for part in accept.split(",")[:30]:
        media, *params = (p.strip().lower() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if media in ("text/html", "application/xhtml+xml"):
            html = max(html, quality)
        elif media == "application/json":
            json = max(json, quality)
        elif media in ("*/*", "application/*"):
            wildcard = max(wildcard, quality)
    return html > (json or wildcard)


def _field(loc: tuple[Any, ...]) -> str:
    parts = []
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
            break  # Pydantic names the union member it tried ("hours.str"): the field is what people need
        parts.append(str(part))
    return ".".join(parts) or "body"


_UNION_TAGS = {
    "str",
    "constrained-str",
    "int",
    "float",
    "bool",
    "dict",
    "list",
    "none",
    "function-after",
    "function-before",
}


def _reason(error: dict[str, Any]) -> str:
    """Pydantic's message, in words for the cases where it shows a regular expression or an internal term."""
    kind, value = error["type"], error.get("input")
    if kind in ("string_pattern_mismatch", "string_unicode") and isinstance(value, str):
        found = unsafe_character(value)
        if found:
            return f"contains the character {found}, which text cannot hold"
        if error.get("ctx", {}).get("pattern") == KEY_PATTERN:
            return "a key is letters, digits, '_', '.' and '-', starting with a letter or digit"
    if kind == "extra_forbidden":
        return "is not a field of this request: leave it out"
    return str(error["msg"])


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's 405 names only the first route that matched)."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        regex, route_methods = getattr(route, "path_regex", None), route.methods
        if regex is not None and route_methods and regex.match(path):
            methods.update(route_methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> Response:
        problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
        return error_response(request, 422, "invalid_input", str(exc), problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        reasons: dict[str, list[str]] = {}
        for e in exc.errors():
            reasons.setdefault(_field(e["loc"]), []).append(_reason(e))
        # A field of several accepted shapes fails once per shape: say it once, with every shape it could take.
        problems = [{"field": f, "reason": " or ".join(dict.fromkeys(r))} for f, r in reasons.items()]
        message = "; ".join(f"{p['reason']} (field: {p['field']})" for p in problems)
        return error_response(request, 422, "invalid_input", message, problems)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return error_response(request, 404, "not_found", str(exc))

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> Response:
        return error_response(request, 401, "unauthenticated", str(exc), headers=CHALLENGE)

    @app.exception_handler(SignInRefused)
    async def _refused(request: Request, exc: SignInRefused) -> Response:
        return error_response(request, 401, "unauthenticated", str(exc), headers=CHALLENGE)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return error_response(request, 403, "forbidden", str(exc))

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> Response:
        return error_response(request, 503, "unavailable", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(TooManyRequests)
    async def _too_many(request: Request, exc: TooManyRequests) -> Response:
        retry = {"Retry-After": str(exc.retry_after)}
        return error_response(request, 429, "too_many_requests", str(exc), headers=retry)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return error_response(request, 409, exc.code, str(exc))

    @app.exception_handler(RulesError)
    async def _rules(request: Request, exc: RulesError) -> Response:
        problems = [{"field": "rules", "reason": p} for p in exc.problems]
        return error_response(request, 422, "invalid_rules", str(exc), problems)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        status = exc.status_code
        message = str(exc.detail)
        if status == 404 and message == HTTPStatus.NOT_FOUND.phrase:
            message = f"there is nothing at {request.url.path}"
        elif status == 405:
            allowed = _allowed_methods(request) or ["GET", "HEAD"]  # a mount (the static files) lists no routes
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed at {request.url.path}: use {', '.join(allowed)}"
        code = _CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        return error_response(request, status, code, message, headers=headers or None)


def internal_error(request: Request, exc: BaseException) -> Response:
    """Log the traceback under a short random id, and answer 500 with the same id so the two can be matched."""
    error_id = secrets.token_hex(4)
    log.error("internal error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    message = f"something went wrong on the server; it is logged (error id {error_id})"
    return error_response(request, 500, "internal", message, reference=error_id)


class CatchAll:
    """Answer any exception no handler took with `internal_error`.

    A handler registered for Exception would run in Starlette's ServerErrorMiddleware, which sends its answer and
    then raises the exception again (so the server logs it a second time, and in-process test clients raise it);
    this middleware sits just inside that one, logs once with the error id, and answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only the server can end it (it closes the connection)
            await internal_error(Request(scope), exc)(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before they are read into memory, and bodies that have not
    arrived whole within the timeout with 408 (the server times out only an idle connection between requests)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # Bodies without a trustworthy length (chunked) are read up to the limit, then replayed. The deadline is for
        # the whole body, so a client that sends a byte now and then is cut off too.
        chunks: list[bytes] = []
        size = 0
        more = True
        with Deadline(self.timeout_seconds):
            while more and size <= self.max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                more = message.get("more_body", False)
        if size > self.max_bytes:
            await self._refuse(scope, send)
            return
        if more:
            said = f"the request body did not arrive within {self.timeout_seconds:g} seconds"
            # Connection: close, so the server drops the connection instead of waiting for the rest of the body.
            late = error_response(Request(scope), 408, "request_timeout", said, headers={"Connection": "close"})
            await late({"type": "http"}, _no_receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"request body is larger than {self.max_bytes} bytes"
        response = error_response(Request(scope), 413, "too_large", message)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


_DESCRIPTIONS = {
    401: "No valid credentials: sign in, or send an API key (Authorization: Bearer <key>).",
    403: "Not allowed: the message names the role or key scope needed.",
    429: "Too many requests; Retry-After says when to try again.",
    404: "It does not exist.",
    409: "It conflicts with the current state (the message says how).",
    413: "The body is larger than the limit.",
    415: "The body is not JSON.",
    422: "Invalid input: each problem names its field.",
    500: "An internal error; the message has the error id the server logged.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses: JSON in the one shape, or a page when a browser asked."""
    return {
        status: {
            "model": ErrorOut,
            "description": _DESCRIPTIONS[status],
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
        for status in statuses
    }


REFUSALS = error_responses(401, 403)  # every route that takes credentials
INTAKE_REFUSALS = error_responses(401, 403, 429)  # and intake keys have rate limits
ALWAYS = error_responses(413, 422, 500)  # any request may be too large, malformed, or meet a bug
NOT_FOUND = error_responses(404)
CONFLICT = error_responses(409)
JSON_BODY = error_responses(415)
