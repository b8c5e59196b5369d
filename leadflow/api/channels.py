"""Conversations over HTTP: a lead's messages, the reply to the client, and the channels' status for admins (the
services' webhooks are api/webhooks/)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import LeadflowRoute, LeadId
from leadflow.core.conversation import REPLY_CHANNELS
from leadflow.core.fields import CleanText
from leadflow.core.policy import Action, Principal
from leadflow.services.channel_state import channels_status
from leadflow.services.context import utcnow
from leadflow.services.conversations import thread_of
from leadflow.services.replies import send_reply

router = APIRouter(tags=["conversations"], route_class=LeadflowRoute, responses=REFUSALS)


class ReplyIn(BaseModel):
    """A manager's answer to the client."""

    model_config = ConfigDict(extra="forbid")

    text: CleanText = Field(..., min_length=1, max_length=4096, description="What to send.")
    channel: Literal[REPLY_CHANNELS] | None = Field(  # type: ignore[valid-type]
        None, description="Where to send it; default: where the client last wrote."
    )
    subject: CleanText | None = Field(
        None, max_length=300, description="E-mail only; default: Re: the client's subject."
    )


@router.get("/api/v1/leads/{lead_id}/messages", summary="A lead's conversation, oldest first", responses=NOT_FOUND)
def get_messages(lead_id: LeadId, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_READ)]) -> dict[str, Any]:
    return {"items": thread_of(app, lead_id, who=who)}


@router.post(
    "/api/v1/leads/{lead_id}/messages",
    status_code=202,
    summary="Answer the client through their channel (queued: the outbox delivers it); counts as a contact",
    responses={**NOT_FOUND, **CONFLICT, **JSON_BODY},
)
def post_message(
    lead_id: LeadId, reply: ReplyIn, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_WORK)]
) -> dict[str, Any]:
    return send_reply(app, lead_id, reply.text, utcnow(), who=who, channel=reply.channel, subject=reply.subject)


@router.get("/api/v1/channels", summary="Each channel: set up or not, its last event, refused calls, its last error")
def get_channels(app: AppDep, who: Annotated[Principal, permit(Action.OUTBOX_READ)]) -> dict[str, Any]:
    return {"items": channels_status(app)}
