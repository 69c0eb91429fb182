"""One idea of "the same request": a hash of its normalized content, for replays and 409s."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.kit.time import rfc3339

# Values kept as they are, and the containers walked, by exact type first: most of a
# request is strings, numbers and plain dicts and lists, and the checks below, the
# Mapping one an ABC's, cost more than the work.
_AS_IS = frozenset({str, int, float, bool, type(None)})


def _canonical(value: Any) -> Any:
    # Instants in UTC and numbers without trailing zeros: the same request written
    # another way (another offset, "10" or "10.00") hashes the same.
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {str(k): _canonical(v) for k, v in value.items()}
    if kind is list:
        return [_canonical(v) for v in value]
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_hash(normalized: Mapping[str, Any]) -> bytes:
    """sha256 of a request's normalized fields, defaults filled in, in canonical JSON."""
    text = json.dumps(_canonical(normalized), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()
