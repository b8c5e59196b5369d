"""Managers and teams."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import LeadflowRoute, ManagerKey, TeamKey, key_query
from leadflow.api.schemas import ManagerOut, TeamOut
from leadflow.core.policy import Action, Principal
from leadflow.services import people
from leadflow.services.context import utcnow

router = APIRouter(prefix="/api/v1", tags=["people"], route_class=LeadflowRoute, responses=REFUSALS)


@router.get("/managers", response_model=list[ManagerOut])
def list_managers(
    app: AppDep,
    who: Annotated[Principal, permit(Action.PEOPLE_READ)],
    team: Annotated[str | None, key_query("Only this team's managers.")] = None,
) -> list[dict[str, Any]]:
    return people.list_managers(app, team)


@router.post("/managers", response_model=ManagerOut, status_code=201, responses={**CONFLICT, **JSON_BODY})
def create_manager(
    data: people.ManagerIn, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_WRITE)]
) -> dict[str, Any]:
    return people.create_manager(app, data, utcnow(), who=who)


@router.get("/managers/{key}", response_model=ManagerOut, responses=NOT_FOUND)
def get_manager(key: ManagerKey, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_READ)]) -> dict[str, Any]:
    return people.get_manager(app, key)


@router.patch(
    "/managers/{key}",
    response_model=ManagerOut,
    summary="Change a manager (capacity, absence, ...)",
    responses={**NOT_FOUND, **JSON_BODY},
)
def update_manager(
    key: ManagerKey, patch: people.ManagerPatch, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_WRITE)]
) -> dict[str, Any]:
    return people.update_manager(app, key, patch, utcnow(), who=who)


@router.delete(
    "/managers/{key}", summary="Remove a manager; one with leads is deactivated instead", responses=NOT_FOUND
)
def delete_manager(
    key: ManagerKey, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_WRITE)]
) -> dict[str, Any]:
    row = people.delete_manager(app, key, utcnow(), who=who)
    return {"key": key, "deleted": row["deleted"], "active": row["active"] if not row["deleted"] else None}


@router.get("/teams", response_model=list[TeamOut])
def list_teams(app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_READ)]) -> list[dict[str, Any]]:
    return people.list_teams(app)


@router.post("/teams", response_model=TeamOut, status_code=201, responses={**CONFLICT, **JSON_BODY})
def create_team(
    data: people.TeamIn, app: AppDep, who: Annotated[Principal, permit(Action.TEAMS_WRITE)]
) -> dict[str, Any]:
    return people.create_team(app, data, utcnow(), who=who)


@router.get("/teams/{key}", response_model=TeamOut, responses=NOT_FOUND)
def get_team(key: TeamKey, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_READ)]) -> dict[str, Any]:
    return people.get_team(app, key)


@router.patch("/teams/{key}", response_model=TeamOut, responses={**NOT_FOUND, **JSON_BODY})
def update_team(
    key: TeamKey, patch: people.TeamPatch, app: AppDep, who: Annotated[Principal, permit(Action.PEOPLE_WRITE)]
) -> dict[str, Any]:
    return people.update_team(app, key, patch, utcnow(), who=who)


@router.delete("/teams/{key}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_team(key: TeamKey, app: AppDep, who: Annotated[Principal, permit(Action.TEAMS_WRITE)]) -> Response:
    people.delete_team(app, key, utcnow(), who=who)
    return Response(status_code=204)
