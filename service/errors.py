"""Domain errors and their rendering as RFC 9457 problem+json."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.kit.dberrors import database_unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Base of every error the API answers with; subclasses set status and slug."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.extra = extra or {}
        self.headers = headers


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class TooManyRequests(ProblemError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, headers={"Retry-After": str(math.ceil(retry_after))})


class ValidationFailed(ProblemError):
    """A payload that is well-formed but breaks a rule; names each field at fault."""

    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(self, errors: Sequence[dict[str, str]], detail: str | None = None) -> None:
        first = errors[0] if errors else {"field": "", "message": "invalid"}
        super().__init__(detail or f"{first['field']}: {first['message']}", errors=errors)


def field_error(field: str, message: str) -> ValidationFailed:
    """A ValidationFailed for one field."""
    return ValidationFailed([{"field": field, "message": message}])


def problem_body(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: Sequence[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem+json document for a status and detail."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"/problems/{slug or phrase.lower().replace(' ', '-')}",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return body


def problem_response(status: int, detail: str, **kwargs: Any) -> JSONResponse:
    """A JSONResponse carrying problem+json."""
    headers = kwargs.pop("headers", None)
    return JSONResponse(
        problem_body(status, detail, **kwargs),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _loc_to_field(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        source = parts.pop(0)
        if not parts:
            return source
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """FastAPI's validation errors as [{field, message}]."""
    items = []
    for err in exc.errors():
        loc = err.get("loc", ())
        # Union/tagged models add the model name to the path; it means nothing to a caller.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
        message = str(err.get("msg", "invalid"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        items.append({"field": _loc_to_field(loc) or "body", "message": message})
    return items


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, the framework's included, as problem+json."""
    app.add_middleware(UnexpectedErrors)

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.slug,
            title=exc.title,
            errors=exc.errors,
            extra=exc.extra,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        return problem_response(
            422, detail, slug="validation-failed", title="Validation failed", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such resource"
        if exc.status_code == 405:
            detail = "method not allowed on this resource"
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


class UnexpectedErrors:
    """An unexpected exception becomes a logged 500 problem+json, and goes no further.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes
    the connection: a keep-alive client would lose the request after the 500 too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer is out: only closing the connection can say so
            response = problem_response(500, "an unexpected error occurred; it has been logged")
            await response(scope, receive, send)


# Seconds a client should wait before retrying when the database is unavailable.
DATABASE_RETRY_AFTER = "1"


def install_database_error_handlers(app: FastAPI) -> None:
    """Answer 503 with Retry-After, not 500, while the database is unreachable."""

    async def _database(_: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            # Any other database error is a bug: the unexpected-error handler has it.
            raise exc
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return problem_response(
            503,
            "the database is unavailable; try again",
            slug="database-unavailable",
            title="Service unavailable",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        )

    for kind in (sqlalchemy.exc.SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, _database)
    app.add_exception_handler(OSError, _database)
