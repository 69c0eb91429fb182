from __future__ import annotations

import uuid

from fastapi import APIRouter

from service.auth.deps import Admin
from service.db import Session
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.programs import service
from service.programs.schemas import ProgramCreate, ProgramOut, ProgramUpdate

router = APIRouter(prefix="/v1/programs", tags=["programs"])


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(body: ProgramCreate, auth: Admin, session: Session) -> ProgramOut:
    return service.to_out(await service.create_program(session, body, auth))


@router.get("", responses=ERRORS)
async def list_(auth: Admin, session: Session, page: Pagination) -> Page[ProgramOut]:
    rows, cursor = await service.list_programs(session, page, auth)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=cursor)


@router.get("/{program_id}", responses=ERRORS)
async def get(program_id: uuid.UUID, auth: Admin, session: Session) -> ProgramOut:
    return service.to_out(await service.get_program(session, program_id, auth))


@router.patch("/{program_id}", responses=WRITE_ERRORS)
async def update(
    program_id: uuid.UUID, body: ProgramUpdate, auth: Admin, session: Session
) -> ProgramOut:
    return service.to_out(await service.update_program(session, program_id, body, auth))
