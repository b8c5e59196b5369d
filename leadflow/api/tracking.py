"""The tracked links and the open pixel of e-mail replies (services/tracking.py makes them): anyone who has the
e-mail may follow them, so they are public; each token is signed, so only an address leadflow sent is ever
redirected to, and only its own message's open or click is recorded."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response

from leadflow.api.auth import public
from leadflow.api.deps import AppDep
from leadflow.api.errors import NOT_FOUND
from leadflow.api.params import LeadflowRoute
from leadflow.core.errors import NotFound
from leadflow.services.client_events import take_tracked
from leadflow.services.context import utcnow
from leadflow.services.tracking import TOKEN_PATTERN, read_token, tracking_key

router = APIRouter(tags=["tracked e-mail"], route_class=LeadflowRoute, responses=NOT_FOUND)

Token = Annotated[str, Path(min_length=1, max_length=80, pattern=TOKEN_PATTERN, description="The signed token.")]
# The smallest transparent GIF: 1x1, one colour.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
         b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")  # fmt: skip
# Every load of the image should reach leadflow (a cached copy is no open), and no redirect is kept either.
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache", "Expires": "0"}
SIGNED = "the address is in an e-mail leadflow sent, and its signed token (HMAC-SHA256) is checked first"


# Declared before /r/{token}, which would otherwise take "<token>.gif" as a token.
@router.get(
    "/r/{token}.gif",
    summary="The open pixel of an e-mail reply: records the first open, answers a 1x1 GIF whatever the token",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF."}},
    dependencies=[public(f"a mail program loads it for the reader: {SIGNED} (a token not signed records nothing)")],
)
def open_pixel(token: Token, app: AppDep) -> Response:
    found = read_token(tracking_key(app), token)
    if found is not None and found[1] is None:
        take_tracked(app, "email_opened", found[0], None, utcnow())
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.get(
    "/r/{token}",
    summary="A tracked link of an e-mail reply: records the first click, redirects to the address that was written",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the address the manager wrote."}},
    dependencies=[public(f"the client follows it from their e-mail: {SIGNED} (a forged or unknown token is 404)")],
)
def tracked_link(token: Token, app: AppDep) -> RedirectResponse:
    found = read_token(tracking_key(app), token)
    url = None
    if found is not None and found[1] is not None:
        url = take_tracked(app, "link_clicked", found[0], found[1], utcnow())
    if url is None or urlsplit(url).scheme.lower() not in ("http", "https"):
        raise NotFound("this link is not known here: it may have been copied wrongly")
    return RedirectResponse(location(url), status_code=302, headers=NO_CACHE)


def location(url: str) -> str:
    """The address for the Location header: Starlette percent-encodes what is not ASCII in it, and a host written
    in another script (пример.укр) goes as IDNA first."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or host.isascii():
        return url
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return url
    at = parts.netloc.lower().rfind(host)
    netloc = parts.netloc[:at] + ascii_host + parts.netloc[at + len(host) :]
    return urlunsplit(parts._replace(netloc=netloc))
