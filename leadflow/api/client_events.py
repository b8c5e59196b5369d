"""What the client did, reported by other systems (a booking calendar, the offer viewer, the site): kept on the
client's open lead as the lead event `client.<type>`, for the automations to act on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import INTAKE_REFUSALS, JSON_BODY
from leadflow.api.params import KEY_PATTERN, MAX_ID, IsoTime, LeadflowRoute
from leadflow.core.automation import ClientEventType
from leadflow.core.fields import CLEAN_TEXT_PATTERN, CleanText
from leadflow.core.policy import Action, Principal
from leadflow.services.client_events import TRACKED_PREFIXES, ClientEvent, take_client_event_async
from leadflow.services.context import utcnow

router = APIRouter(tags=["client events"], route_class=LeadflowRoute, responses=INTAKE_REFUSALS)

MAX_DETAILS = 20  # fields of `data`: what a trigger or a person needs to know of the event, not a document
DetailKey = Annotated[str, Field(min_length=1, max_length=60, pattern=KEY_PATTERN)]
DetailValue = (
    Annotated[CleanText, Field(max_length=500)]
    | Annotated[int, Field(ge=-MAX_ID - 1, le=MAX_ID)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)


# Whose event it is: at least one of these, given and not null (the document says so, the service checks it).
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": CLEAN_TEXT_PATTERN}
_WHOSE: dict[str, Any] = {"lead_id": {"type": "integer"}, "phone": _TEXT, "email": _TEXT, "messenger_id": _TEXT}
# Text that starts with something other than a blank; "open:" and "click:" are the ids of leadflow's own tracking.
EVENT_ID_PATTERN = r"^(?!open:|click:)[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


class ClientEventIn(BaseModel):
    """One thing the client did. Say whose it is with lead_id, phone, email or messenger_id (at least one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": [name], "properties": {name: kind}} for name, kind in _WHOSE.items()]
        },
    )

    id: CleanText = Field(..., min_length=1, max_length=200, json_schema_extra={"pattern": EVENT_ID_PATTERN},
                          description="Your own id of the event: the same id sent again is the same event.")  # fmt: skip
    type: ClientEventType = Field(..., description="What the client did.")
    at: IsoTime | None = Field(None, description="When the client did it; default: when it is received.")
    lead_id: int | None = Field(None, ge=1, le=MAX_ID, description="The lead, when the reporter knows it.")
    phone: CleanText | None = Field(
        None, min_length=1, max_length=40, description="The client's phone, in any usual writing."
    )
    email: CleanText | None = Field(None, min_length=1, max_length=254, description="The client's e-mail.")
    messenger_id: CleanText | None = Field(
        None, min_length=1, max_length=200, description="The client's id in a messenger."
    )
    url: CleanText | None = Field(None, max_length=2000, description="The address the client opened or clicked.")
    page: CleanText | None = Field(None, max_length=500, description="The page or screen, as the reporter names it.")
    data: dict[DetailKey, DetailValue] | None = Field(
        None, max_length=MAX_DETAILS, description=f"Other fields of the event (an offer's id, a meeting's time): "
        f"at most {MAX_DETAILS}, each a number, true/false or text of at most 500 characters.",
    )  # fmt: skip

    @field_validator("id")
    @classmethod
    def _own_id(cls, value: str) -> str:
        # What the pattern says beyond clean text, in words (the pattern's look-ahead is for the document).
        if value[:1].isspace():
            raise PydanticCustomError("event_id", "starts with a blank: send the id as your system keeps it")
        if value.startswith(TRACKED_PREFIXES):
            raise PydanticCustomError("event_id", "ids starting with 'open:' or 'click:' are leadflow's own tracking's")
        return value


class ClientEventOut(BaseModel):
    id: int = Field(..., description="The event's number in leadflow.")
    outcome: Literal["attached", "unmatched"] = Field(
        ..., description="attached: on the lead `lead_id`; unmatched: kept, on no lead (`reason` says why)."
    )
    lead_id: int | None
    reason: str | None
    repeat: bool = Field(..., description="The id was received before: this is the first answer, nothing new.")


@router.post(
    "/api/v1/events",
    status_code=202,
    summary="What the client did (opened, clicked, visited, booked...): kept on their open lead as client.<type>",
    responses=JSON_BODY,
)
async def post_event(
    body: ClientEventIn, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_CREATE)]
) -> ClientEventOut:
    event = ClientEvent(
        external_id=body.id, type=body.type, at=body.at, lead_id=body.lead_id, phone=body.phone, email=body.email,
        messenger_id=body.messenger_id, url=body.url, page=body.page, details=dict(body.data or {}),
    )  # fmt: skip
    taken: dict[str, Any] = await take_client_event_async(app, event, utcnow(), who=who)
    return ClientEventOut(**taken)
