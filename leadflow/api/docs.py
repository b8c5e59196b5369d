"""The API's documentation pages, /docs (Swagger UI) and /redoc, each under a Content-Security-Policy of its own.

FastAPI's pages start the viewer with an inline script, which leadflow's policy refuses. These load the viewer from
the CDN and start it from leadflow's own static file; their policy adds that CDN for scripts, styles and images.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from leadflow.api.auth import public
from leadflow.api.security import DIRECTIVES, content_security_policy
from leadflow.web.pages import STATIC, STATIC_URL, render

CDN = "https://cdn.jsdelivr.net"
SWAGGER_JS = f"{CDN}/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = f"{CDN}/npm/swagger-ui-dist@5/swagger-ui.css"
REDOC_JS = f"{CDN}/npm/redoc@2/bundles/redoc.standalone.js"

# Swagger UI's style sheet draws its icons as data: images.
SWAGGER_POLICY = content_security_policy(
    {**DIRECTIVES, "script-src": f"'self' {CDN}", "style-src": f"'self' {CDN}", "img-src": f"'self' {CDN} data:"}
)


def redoc_policy(nonce: str) -> str:
    """ReDoc writes its styles into <style> elements, marked with the page's nonce (redoc-init.js hands it over);
    its search runs in a worker it builds from a blob."""
    return content_security_policy(
        {
            **DIRECTIVES,
            "script-src": f"'self' {CDN}",
            "style-src": f"'self' {CDN} 'nonce-{nonce}'",
            "img-src": f"'self' {CDN} data:",
            "worker-src": "blob:",
        }
    )


router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: str) -> str:
    root = request.scope.get("root_path", "")
    return render(template, "en", title=request.app.title, openapi_url=root + request.app.openapi_url,
                  static=root + STATIC_URL, **context)  # fmt: skip


DOCS_ARE_PUBLIC = public("the API's description: nothing in it is a secret")


@router.get("/docs", dependencies=[DOCS_ARE_PUBLIC])
async def swagger_ui(request: Request) -> HTMLResponse:
    page = _page(request, "swagger.html", swagger_js=SWAGGER_JS, swagger_css=SWAGGER_CSS)
    return HTMLResponse(page, headers={"Content-Security-Policy": SWAGGER_POLICY})


@router.get("/redoc", dependencies=[DOCS_ARE_PUBLIC])
async def redoc(request: Request) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    page = _page(request, "redoc.html", redoc_js=REDOC_JS, nonce=nonce)
    return HTMLResponse(page, headers={"Content-Security-Policy": redoc_policy(nonce)})


def static_files() -> StaticFiles:
    """The style sheets and scripts leadflow's pages load (under /static)."""
    return StaticFiles(directory=STATIC)
