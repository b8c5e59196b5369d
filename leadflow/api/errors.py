"""Every error answer has one shape: {"error": code, "message": text, "problems": [{field, reason}]}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.rules_text import RulesError


def error_body(code: str, message: str, problems: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "problems": problems or []}


def _field(loc: tuple[Any, ...]) -> str:
    parts = []
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
            break  # Pydantic names the union member it tried ("hours.str"): the field is what people need
        parts.append(str(part))
    return ".".join(parts) or "body"


_UNION_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "function-after", "function-before"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
        return JSONResponse(error_body("invalid_input", str(exc), problems), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons: dict[str, list[str]] = {}
        for e in exc.errors():
            reasons.setdefault(_field(e["loc"]), []).append(e["msg"])
        # A field of several accepted shapes fails once per shape: say it once, with every shape it could take.
        problems = [{"field": f, "reason": " or ".join(dict.fromkeys(r))} for f, r in reasons.items()]
        message = "; ".join(f"{p['reason']} (field: {p['field']})" for p in problems)
        return JSONResponse(error_body("invalid_input", message, problems), status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body("not_found", str(exc)), status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(error_body("conflict", str(exc)), status_code=409)

    @app.exception_handler(RulesError)
    async def _rules(_: Request, exc: RulesError) -> JSONResponse:
        problems = [{"field": "rules", "reason": p} for p in exc.problems]
        return JSONResponse(error_body("invalid_rules", str(exc), problems), status_code=422)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # Bodies without a trustworthy length (chunked) are read up to the limit, then replayed.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            error_body("too_large", f"request body is larger than {self.max_bytes} bytes"), status_code=413
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
