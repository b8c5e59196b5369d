"""Managers and teams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from leadflow.api.deps import AppDep
from leadflow.api.schemas import ManagerOut, TeamOut
from leadflow.core.rules import Manager, Team
from leadflow.services import people
from leadflow.services.context import utcnow

router = APIRouter(prefix="/api/v1", tags=["people"])


@router.get("/managers", response_model=list[ManagerOut])
def list_managers(app: AppDep, team: str | None = None) -> list[dict[str, Any]]:
    return people.list_managers(app, team)


@router.post("/managers", response_model=ManagerOut, status_code=201)
def create_manager(data: Manager, app: AppDep) -> dict[str, Any]:
    return people.create_manager(app, data, utcnow())


@router.get("/managers/{key}", response_model=ManagerOut)
def get_manager(key: str, app: AppDep) -> dict[str, Any]:
    return people.get_manager(app, key)


@router.patch("/managers/{key}", response_model=ManagerOut, summary="Change a manager (capacity, absence, ...)")
def update_manager(key: str, patch: people.ManagerPatch, app: AppDep) -> dict[str, Any]:
    return people.update_manager(app, key, patch, utcnow())


@router.delete("/managers/{key}", summary="Remove a manager; one with leads is deactivated instead")
def delete_manager(key: str, app: AppDep) -> dict[str, Any]:
    row = people.delete_manager(app, key, utcnow())
    return {"key": key, "deleted": row["deleted"], "active": row["active"] if not row["deleted"] else None}


@router.get("/teams", response_model=list[TeamOut])
def list_teams(app: AppDep) -> list[dict[str, Any]]:
    return people.list_teams(app)


@router.post("/teams", response_model=TeamOut, status_code=201)
def create_team(data: Team, app: AppDep) -> dict[str, Any]:
    return people.create_team(app, data, utcnow())


@router.get("/teams/{key}", response_model=TeamOut)
def get_team(key: str, app: AppDep) -> dict[str, Any]:
    return people.get_team(app, key)


@router.patch("/teams/{key}", response_model=TeamOut)
def update_team(key: str, patch: people.TeamPatch, app: AppDep) -> dict[str, Any]:
    return people.update_team(app, key, patch, utcnow())


@router.delete("/teams/{key}", status_code=204)
def delete_team(key: str, app: AppDep) -> Response:
    people.delete_team(app, key)
    return Response(status_code=204)
