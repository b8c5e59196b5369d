"""The sign-in page, signing out, and the start page a signed-in person lands on."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadflow.api.accounts import end_session, open_session, set_session_cookie
from leadflow.api.auth import permit, public
from leadflow.api.deps import AppDep, SettingsDep
from leadflow.api.intake import form_fields
from leadflow.core.errors import Forbidden, TooManyRequests
from leadflow.core.policy import Action, Principal
from leadflow.services.accounts import SignInRefused
from leadflow.web.i18n import pick_language, translator
from leadflow.web.pages import render

router = APIRouter(include_in_schema=False)
PUBLIC = public("the sign-in page is how a person gets a session")


def _language(request: Request) -> str:
    return pick_language(request.headers.get("accept-language"))


def _next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page(
    request: Request, status: int, *, problem: str | None = None, username: str = "", next_: str = "/"
) -> Response:
    html = render("login.html", _language(request), problem=problem, username=username, next=next_)
    return HTMLResponse(html, status_code=status)


@router.get("/login", dependencies=[PUBLIC])
def login_page(request: Request, next: str | None = None) -> Response:
    return _page(request, 200, next_=_next(next))


@router.post("/login", dependencies=[PUBLIC])
async def login_form(request: Request, app: AppDep, settings: SettingsDep) -> Response:
    fields, _ = form_fields(await request.body(), "utf-8")
    username, password = fields.get("username", ""), fields.get("password", "")
    target = _next(fields.get("next"))
    _ = translator(_language(request))
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        # Another site signing the visitor in to an account of its choosing (login CSRF).
        raise Forbidden("sign in from leadflow's own page")
    if not username or not password:
        return _page(request, 422, problem=_("Wrong username or password."), username=username, next_=target)
    try:
        session = await to_thread.run_sync(open_session, app, settings, request, username, password)
    except SignInRefused:
        return _page(request, 401, problem=_("Wrong username or password."), username=username, next_=target)
    except TooManyRequests as exc:
        page = _page(request, 429, problem=_("Too many failed sign-ins. Try again in a few minutes."),
                     username=username, next_=target)  # fmt: skip
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, session, settings)
    return response


@router.post("/logout")
def logout_form(request: Request, app: AppDep, who: Annotated[Principal, permit(Action.SELF)]) -> Response:
    response = RedirectResponse("/login", status_code=303)
    end_session(app, request, who, response)
    return response
