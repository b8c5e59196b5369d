"""GET /api/v1/health: the database answers, the worker keeps up, and where notifications would go.

`leadflow serve` and the demo put the worker they run in this process on `app.state.worker`; its senders are
the channels that can send. Without one, the notification settings say which channels are enabled.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import REFUSALS
from leadflow.core.policy import Action, Principal
from leadflow.services.context import utcnow
from leadflow.services.health import health_report

router = APIRouter(prefix="/api/v1", tags=["ops"], responses=REFUSALS)


class NotificationsOut(BaseModel):
    channels: list[str] = Field(..., description="Channels that can send: telegram, email, slack, webhook.")
    warnings: list[str] = Field(..., description="Why some or all notifications would reach no one, and what to set.")


class WorkerOut(BaseModel):
    in_process: bool = Field(..., description="A worker runs inside this API process (`leadflow serve`).")
    status: Literal["ok", "behind"] = Field(..., description="behind: deadlines or notifications wait too long.")
    overdue_deadlines: int = Field(..., description="First-contact deadlines passed more than a minute ago.")
    overdue_notifications: int = Field(..., description="Notifications due more than a minute ago, not sent.")
    oldest_overdue_seconds: int | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str = Field(..., description="sqlite or postgresql")
    notifications: NotificationsOut
    worker: WorkerOut


class HealthDown(BaseModel):
    status: Literal["error"]
    database: str
    message: str


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthDown, "description": "The database does not answer."}},
    summary="Database, worker and notification channels, with warnings",
)
def get_health(
    request: Request, app: AppDep, who: Annotated[Principal, permit(Action.HEALTH_READ)]
) -> dict[str, Any] | JSONResponse:
    worker = getattr(request.app.state, "worker", None)
    channels = tuple(worker.senders) if worker is not None else None
    try:
        return health_report(app, utcnow(), channels=channels, worker_in_process=worker is not None)
    except SQLAlchemyError as exc:
        problem = " ".join(str(getattr(exc, "orig", None) or exc).split())
        down = HealthDown(status="error", database=app.engine.dialect.name, message=f"the database failed: {problem}")
        return JSONResponse(down.model_dump(), status_code=503)
