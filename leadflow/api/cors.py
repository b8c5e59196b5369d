"""Which other sites' pages may call the API from a browser (CORS): none, unless LEADFLOW_CORS_ORIGINS lists them.

Site forms need no CORS: a browser posts a form anywhere, and gets the answer as a page, not to a script.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from leadflow.api.errors import error_body

METHODS = ("GET", "POST", "PATCH", "DELETE")
HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-CSRF-Token")


class Cors(CORSMiddleware):
    """Starlette's CORS for the listed origins; a refused preflight is answered in the one error shape.

    Cookies and HTTP authentication go only to origins listed by name: with "*" any page may call, without them.
    """

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        any_origin = "*" in origins
        super().__init__(app, allow_origins=["*"] if any_origin else list(origins), allow_methods=METHODS,
                         allow_headers=HEADERS, allow_credentials=not any_origin)  # fmt: skip

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        failures = bytes(answer.body).decode().removeprefix("Disallowed CORS ").split(", ")
        reasons = {
            "origin": f"pages on {request_headers['origin']} may not call this API (LEADFLOW_CORS_ORIGINS)",
            "method": f"the method must be one of {', '.join(METHODS)}",
            "headers": f"the headers may be {', '.join(HEADERS)}",
            "private-network": "calls into a private network are not allowed",
        }
        message = "cross-origin request refused: " + "; ".join(reasons.get(f, f) for f in failures)
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse(error_body("cors_refused", message), status_code=400, headers=headers)
