"""The problem+json responses every route lists in the OpenAPI spec."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("the body is not JSON, or its Content-Length is not a number"),
    401: _problem("missing or invalid API key"),
    403: _problem("the key's role may not do this"),
    404: _problem("no such object, or not yours"),
    413: _problem("the body is larger than the service takes (AFFILIATE_MAX_BODY_BYTES)"),
    422: _problem("a field is invalid; `errors` names each one"),
    429: _problem("too many failed authentications from this address; see Retry-After"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: _problem("conflicts with the stored state"),
}
