from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.auth.deps import Reader
from service.db import Session
from service.fraud import report
from service.fraud.schemas import Quality
from service.kit.time import Instant
from service.openapi_responses import ERRORS

router = APIRouter(prefix="/v1/reports", tags=["reports"])

DESCRIPTION = """\
Traffic quality per partner: clicks and bot clicks (from the hourly rollup, by the start
of their UTC hour), attributed conversions by status (by `occurred_at`), and how many
conversions each fraud rule fired on. Admin and finance see every partner, a merchant key
its programs' partners, a partner key its own row only. `from` (inclusive) and `to`
(exclusive) default to the 30 days up to now; at most 400 days.
"""


@router.get(
    "/quality",
    response_model=Quality,
    response_model_by_alias=True,
    description=DESCRIPTION,
    responses=ERRORS,
)
async def quality(
    auth: Reader,
    session: Session,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    from_: Annotated[
        Instant | None, Query(alias="from", description="inclusive; default to - 30 days")
    ] = None,
    to: Annotated[Instant | None, Query(description="exclusive; default now")] = None,
) -> Quality:
    """Clicks, bot share, held, rejected and approved conversions and rules fired, per partner."""
    return await report.quality(session, auth, from_, to, program_id, partner_id)
