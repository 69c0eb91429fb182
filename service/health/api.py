from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.auth.deps import refuse
from service.health.metrics import render_metrics
from service.migrate import current_revisions, head_revisions
from service.openapi_responses import ERRORS
from service.redirect.writer import WriterHealth

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _clicks(health: WriterHealth) -> dict[str, Any]:
    return {
        "status": "ok" if health.can_commit else "failing",
        "consecutive_failures": health.consecutive_failures,
        "lag_ms": round(health.lag_seconds * 1000),
        "last_commit_ms_ago": None
        if health.last_commit_seconds_ago is None
        else round(health.last_commit_seconds_ago * 1000),
        "queued": health.queued,
        "unconfirmed": health.unconfirmed,
        "lost": health.lost,
    }


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, its schema is at the code's head, and the click
    writer commits."""
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await current_revisions(conn)
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
            status_code=503,
        )
    heads = head_revisions()
    if current != heads:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {"current": sorted(current), "head": sorted(heads)},
            },
            status_code=503,
        )
    runtime = getattr(request.app.state, "redirect", None)
    if runtime is None:
        return JSONResponse({"status": "unavailable", "clicks": "not running"}, status_code=503)
    writer = runtime.writer
    await writer.probe()
    clicks = _clicks(writer.health())
    if clicks["status"] != "ok":
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "clicks": clicks}, status_code=503
        )
    return JSONResponse(
        {"status": "ok", "database": "ok", "migrations": sorted(current), "clicks": clicks}
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: ERRORS[401],
        429: ERRORS[429],
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's counters; AFFILIATE_METRICS_TOKEN guards it."""
    token: str | None = request.app.state.settings.metrics_token
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken says nothing about how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise refuse(request, "/metrics needs Authorization: Bearer <AFFILIATE_METRICS_TOKEN>")
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
