"""Lead intake over HTTP: JSON from integrations, HTML forms from browsers, and the dry run.

Integrations get JSON. A visitor who posted a site's form gets a page in their language: thanks, or the form
again with what to fix, or the site's own page (`_redirect`) with the result in its query string.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep, SettingsDep
from leadflow.api.errors import CONFLICT, INTAKE_REFUSALS, error_body, error_responses
from leadflow.api.schemas import IntakeOut, ManagerRef, ProblemOut
from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.lead import LeadIn, read_lead
from leadflow.core.policy import Action, Principal
from leadflow.core.text import read_json
from leadflow.services.context import utcnow
from leadflow.services.explain import dry_run
from leadflow.services.intake import Intake, receive_async
from leadflow.web.i18n import pick_language
from leadflow.web.pages import form_page, thanks_page

router = APIRouter(prefix="/api/v1/leads", tags=["leads"], responses=INTAKE_REFUSALS)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnsupportedType(Exception):
    def __init__(self, content_type: str) -> None:
        self.content_type = content_type


class Body:
    """What was posted: the fields, how they came (form or JSON), and what was wrong with the body itself."""

    def __init__(self, data: dict[str, Any], is_form: bool, problems: list[FieldProblem]) -> None:
        self.is_form = is_form
        self.problems = problems
        # Inputs named with a leading underscore steer the answer (_redirect, _lang); they are not the lead.
        self.control = {k: v for k, v in data.items() if k.startswith("_") and isinstance(v, str)}
        self.data = {k: v for k, v in data.items() if not k.startswith("_")} if is_form else data


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return "utf-8"


def form_fields(body: bytes, charset: str) -> tuple[dict[str, str], list[FieldProblem]]:
    """An urlencoded form, decoded in its declared charset; bytes that are not text are replaced, and said so."""
    text = body.decode("latin-1")  # percent-escapes and ASCII only, by the form encoding's rules
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
        problems: list[FieldProblem] = []
    except (UnicodeDecodeError, LookupError):
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")
        problems = [FieldProblem("body", f"the form was not valid {charset}: unreadable characters were replaced")]
    fields: dict[str, str] = {}
    for key, value in pairs:
        if value.strip() or key not in fields:  # a repeated input keeps its last non-empty value
            fields[key] = value
    return fields, problems


async def read_body(request: Request) -> Body:
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields, problems = form_fields(await request.body(), _charset(content_type))
        return Body(dict(fields), True, problems)
    if kind == "multipart/form-data":
        form = await request.form()
        return Body({k: v for k, v in form.multi_items() if isinstance(v, str)}, True, [])
    if kind == "application/json" or kind.endswith("+json"):
        data = read_json(await request.body())
        if not isinstance(data, dict):
            raise InvalidInput.one("body", 'a lead is a JSON object, like {"name": ..., "phone": ...}')
        return Body(data, False, [])
    raise UnsupportedType(kind)


def _honeypot(body: Body, field: str) -> str | None:
    """A bot's request: it filled the field people never see. The lead is kept as junk with this reason, so a person
    caught by mistake can be restored."""
    value = body.control.get(field) if field.startswith("_") and body.is_form else body.data.pop(field, None)
    if isinstance(value, str) and value.strip():
        return f"the hidden field '{field}', which people never see, was filled: a bot's request"
    return None


def _unsupported(exc: UnsupportedType) -> JSONResponse:
    message = f"content type '{exc.content_type or 'none'}' is not accepted: send application/json or a form"
    return JSONResponse(error_body("unsupported_media_type", message), status_code=415)


def _wants_page(request: Request, body: Body) -> bool:
    return body.is_form and "text/html" in request.headers.get("accept", "")


def _redirect_target(request: Request, body: Body, settings: Any) -> str | None:
    """The site's own result page, if the form named one on the site it was posted from (never anywhere else)."""
    target = body.control.get("_redirect", "").strip()
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    allowed = {urlsplit(origin).hostname, *settings.form_redirect_hosts} - {None, ""}
    return target if parts.hostname in allowed else None


def _with_result(url: str, result: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(result)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page_language(request: Request, body: Body) -> str:
    chosen = body.control.get("_lang") or body.data.get("language")
    return pick_language(request.headers.get("accept-language"), chosen if isinstance(chosen, str) else None)


def _answer_page(request: Request, body: Body, settings: Any, result: Intake) -> Response:
    redirect = _redirect_target(request, body, settings)
    if redirect:
        outcome = {"result": "repeat" if not result.created else "ok", "lead": str(result.lead_id)}
        return RedirectResponse(_with_result(redirect, outcome), status_code=303)
    page = thanks_page(_page_language(request, body), repeated=not result.created and not result.merged)
    return HTMLResponse(page, status_code=201 if result.created else 200)


def _refusal_page(request: Request, body: Body, settings: Any, exc: InvalidInput) -> Response:
    redirect = _redirect_target(request, body, settings)
    if redirect:
        fields = ",".join(dict.fromkeys(p.field for p in exc.problems))
        return RedirectResponse(_with_result(redirect, {"result": "error", "fields": fields}), status_code=303)
    values = {k: v for k, v in {**body.data, **body.control}.items() if isinstance(v, str)}
    problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
    page = form_page(_page_language(request, body), request.url.path, problems, values)
    return HTMLResponse(page, status_code=422)


def _documented_body() -> dict[str, Any]:
    """The lead as the OpenAPI document shows it: LeadIn's fields, and any others (kept under `extra`)."""
    schema = LeadIn.model_json_schema()
    schema["additionalProperties"] = True
    form = {"type": "object", "additionalProperties": {"type": "string"}, "properties": {
        name: {"type": "string"} for name in schema["properties"] if name != "extra"}}  # fmt: skip
    content = {"application/json": {"schema": schema}, "application/x-www-form-urlencoded": {"schema": form},
               "multipart/form-data": {"schema": form}}  # fmt: skip
    return {"requestBody": {"required": True, "content": content}}


_BODY = _documented_body()


@router.post(
    "",
    response_model=IntakeOut,
    status_code=201,
    summary="Take in a lead (JSON or HTML form)",
    openapi_extra=_BODY,
    responses={
        200: {"model": IntakeOut, "description": "A repeated delivery (the first lead), or a repeat request folded "
              "into the client's open lead"},
        201: {"content": {"text/html": {"schema": {"type": "string"}}},
              "description": "Taken; a browser's form post gets a thank-you page"},
        303: {"description": "A browser's form post with `_redirect`: to the site's own page, with the result"},
        **CONFLICT,
        **error_responses(415),
    },
)  # fmt: skip
async def post_lead(
    request: Request,
    app: AppDep,
    settings: SettingsDep,
    who: Annotated[Principal, permit(Action.LEAD_CREATE)],
    idempotency_key: str | None = Header(None, max_length=200),
) -> Response:
    """Answer only after the lead and its routing decision are committed.

    A lead with any usable way to reach the client (a valid phone, e-mail or messenger id) is kept; fields that
    cannot be read are named in `problems` and kept raw. A repeated delivery (same `Idempotency-Key`, or same
    `channel` + `external_id`, with the same body) returns the first lead with status 200; the same key with a
    different body is refused with 409. A client's repeat request while their lead is open is folded into it.
    """
    try:
        body = await read_body(request)
    except UnsupportedType as exc:
        return _unsupported(exc)
    sender = (who.label, who.address, _honeypot(body, settings.honeypot_field))
    try:
        result = await receive_async(app, body.data, utcnow(), idempotency_key=idempotency_key,
                                     problems=body.problems, sender=sender)  # fmt: skip
    except InvalidInput as exc:
        if _wants_page(request, body):
            return _refusal_page(request, body, settings, exc)
        raise
    if _wants_page(request, body):
        return _answer_page(request, body, settings, result)
    manager = ManagerRef(key=result.manager_key, name=result.manager_name or "") if result.manager_key else None
    answer = IntakeOut(
        id=result.lead_id,
        created=result.created,
        merged=result.merged,
        status=result.status,
        manager=manager,
        reason=result.reason,
        problems=[ProblemOut(field=p.field, reason=p.reason) for p in result.problems],
        url=f"{settings.public_url}/api/v1/leads/{result.lead_id}",
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if result.created else 200)


@router.post(
    "/dry-run",
    summary="What the rules would do with this lead now; nothing is stored",
    openapi_extra=_BODY,
    responses=error_responses(415),
)
async def dry_run_lead(request: Request, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_READ)]) -> Any:
    try:
        body = await read_body(request)
    except UnsupportedType as exc:
        return _unsupported(exc)
    lead, problems, _ = read_lead(body.data)
    return await run_in_threadpool(dry_run, app, lead, utcnow(), [*body.problems, *problems])
