"""Input text that PostgreSQL cannot store, found before it reaches the database."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from service.errors import ValidationFailed

MESSAGE = "contains a character that cannot be stored (NUL or an unpaired surrogate)"


def _bad(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string, or object key, that text and JSONB columns refuse."""
    if isinstance(value, str):
        return path or "body" if _bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _bad(key):
                return path or "body"
            found = unstorable(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable(item, f"{path}[{i}]")
            if found:
                return found
    return None


async def storable_input(request: Request) -> None:
    """Refuse, with a 422 naming the field, text PostgreSQL would reject with an error."""
    for source in (request.path_params, request.query_params):
        for key, value in source.items():
            if _bad(key) or _bad(value):
                raise ValidationFailed(
                    [{"field": key if not _bad(key) else "query", "message": MESSAGE}]
                )
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        # Raw surrogate bytes (ED A0..BF ..) are not UTF-8, yet json.loads takes them in.
        # Looked for as find() and ints: `b"..." in body` raises and clears a TypeError
        # first (service.redirect.location._decode).
        if body.find(b"\\u") < 0 and 0 not in body and 0xED not in body:
            return  # the common case: no escapes, nothing to decode twice
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return  # malformed JSON is the framework's 4xx to give
        try:
            found = unstorable(parsed)
        except RecursionError:
            return  # nested past any field's bound: validation refuses it, naming the field
        if found:
            raise ValidationFailed([{"field": found, "message": MESSAGE}])
