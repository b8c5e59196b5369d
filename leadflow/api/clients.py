"""A client's personal data on request: erase it (leaving anonymised rows, so reports still count the leads), or
export everything held about them as JSON. Admins only; every erasure is in the audit.

A client is addressed by their contact id, or through any of their leads (many leads have no contact yet).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, NOT_FOUND, REFUSALS
from leadflow.api.params import MAX_ID, LeadflowRoute, LeadId
from leadflow.core.errors import NotFound
from leadflow.core.policy import Action, Principal
from leadflow.services import privacy
from leadflow.services.context import utcnow
from leadflow.store.db import READ_ONLY

router = APIRouter(prefix="/api/v1", tags=["clients"], route_class=LeadflowRoute, responses=REFUSALS)
ClientId = Annotated[int, Path(ge=1, le=MAX_ID, description="The client's contact id.")]
Admin = Annotated[Principal, permit(Action.CLIENT_DATA)]
ANSWERS = {**NOT_FOUND, **CONFLICT}


def _erase(app: AppDep, who: Principal, find: Any, what: str) -> dict[str, Any]:
    with app.engine.begin() as conn:
        client = find(conn)
        if client is None:
            raise NotFound(f"{what} does not exist")
        changed = privacy.erase_client(conn, client, utcnow(), who)
    return {"leads": list(client.lead_ids), "contacts": list(client.contact_ids), "changed": changed}


def _export(app: AppDep, find: Any, what: str) -> dict[str, Any]:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        client = find(conn)
        if client is None:
            raise NotFound(f"{what} does not exist")
        return privacy.export_client(conn, client)


@router.delete("/clients/{client_id}", summary="Erase a client's personal data (the leads stay, anonymised)",
               responses=ANSWERS)  # fmt: skip
def erase_client(client_id: ClientId, app: AppDep, who: Admin) -> dict[str, Any]:
    return _erase(app, who, lambda conn: privacy.client_of_contact(conn, client_id), f"client {client_id}")


@router.get("/clients/{client_id}/export", summary="Everything held about a client, as JSON", responses=ANSWERS)
def export_client(client_id: ClientId, app: AppDep, who: Admin) -> dict[str, Any]:
    return _export(app, lambda conn: privacy.client_of_contact(conn, client_id), f"client {client_id}")


@router.delete("/leads/{lead_id}/client", summary="Erase the personal data of this lead's client",
               responses=ANSWERS)  # fmt: skip
def erase_client_of_lead(lead_id: LeadId, app: AppDep, who: Admin) -> dict[str, Any]:
    return _erase(app, who, lambda conn: privacy.client_of_lead(conn, lead_id), f"lead {lead_id}")


@router.get("/leads/{lead_id}/client/export", summary="Everything held about this lead's client, as JSON",
            responses=ANSWERS)  # fmt: skip
def export_client_of_lead(lead_id: LeadId, app: AppDep, who: Admin) -> dict[str, Any]:
    return _export(app, lambda conn: privacy.client_of_lead(conn, lead_id), f"lead {lead_id}")
