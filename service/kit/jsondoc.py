"""Free-form JSON objects the API stores (metadata, payout details, terms), bounded in size."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_DEPTH = 8
METADATA_MAX_KEYS = 100


def _shape(value: Any) -> tuple[int, int]:
    """Depth of nesting and keys in all, walked without recursion: a body may nest far
    deeper than Python's stack."""
    depth, keys = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            depth = max(depth, level)
            keys += len(item)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in item)
    return depth, keys


def check_document(
    value: dict[str, Any], *, max_bytes: int, max_depth: int, max_keys: int
) -> dict[str, Any]:
    """The object itself when within the bounds; a ValueError saying which one it breaks."""
    depth, keys = _shape(value)
    if depth > max_depth:
        raise ValueError(f"must nest at most {max_depth} levels deep")
    if keys > max_keys:
        raise ValueError(f"must have at most {max_keys} keys in all")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        # json.loads takes NaN and Infinity in, though JSON has no such numbers; the
        # database refuses them.
        raise ValueError("must not hold NaN or Infinity: JSON has no such numbers") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"must be at most {max_bytes} bytes as JSON")
    return value


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    return check_document(
        value,
        max_bytes=METADATA_MAX_BYTES,
        max_depth=METADATA_MAX_DEPTH,
        max_keys=METADATA_MAX_KEYS,
    )


def _terms(value: dict[str, Any]) -> dict[str, Any]:
    # Terms are validated field by field later; this only keeps the walk and the stored
    # document small. Category maps may be long, so the key count is generous.
    return check_document(value, max_bytes=256 * 1024, max_depth=8, max_keys=10_000)


# Caller-defined JSON kept beside a record: 16 KiB as JSON, 8 levels, 100 keys.
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
# Agreement terms as sent, before their own validation.
TermsDocument = Annotated[dict[str, Any], AfterValidator(_terms)]
