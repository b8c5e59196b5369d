"""How a page answers an error: sign in first, a page saying what went wrong, or (a request htmx made) a notice
put in the page's notice area."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import escape

from leadflow.api.auth import SESSION_COOKIE
from leadflow.web.i18n import pick_language
from leadflow.web.pages import error_page
from leadflow.web.viewer import from_htmx


def sign_in_first(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(here)}"


def page_error(
    request: Request, status: int, message: str, problems: Sequence[Mapping[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
    if status == 401:
        target = sign_in_first(request) if request.method == "GET" else "/login"
        if from_htmx(request):
            # htmx follows this header with a full page load (a 3xx would be followed inside the fragment).
            return Response(status_code=204, headers={**headers, "HX-Redirect": target})
        response = RedirectResponse(target, status_code=303, headers=headers)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    if from_htmx(request):
        details = "".join(f"<li>{escape(p['reason'])}</li>" for p in problems if p.get("reason") != message)
        body = f'<p class="notice error" role="alert">{escape(message)}</p>' + (
            f"<ul>{details}</ul>" if details else ""
        )
        # The notice area takes it, whatever the request meant to swap (the page's htmx settings let 4xx swap).
        return HTMLResponse(body, status_code=status, headers={**headers, "HX-Retarget": "#notices",
                                                               "HX-Reswap": "innerHTML"})  # fmt: skip
    language = pick_language(request.headers.get("accept-language"))
    return HTMLResponse(error_page(language, status, message, problems), status_code=status, headers=headers)
