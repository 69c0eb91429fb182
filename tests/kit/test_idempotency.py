"""Request hashes: stored with every conversion and refund, so their bytes never change."""

from __future__ import annotations

import hashlib
import json
import types
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.kit.idempotency import _canonical, request_hash
from service.kit.time import rfc3339


def _canonical_by_the_rules(value: Any) -> Any:
    # The rules alone, in the order they were first written, without the fast paths.
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical_by_the_rules(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_by_the_rules(v) for v in value]
    return value


def _hash_by_the_rules(value: Any) -> bytes:
    text = json.dumps(_canonical_by_the_rules(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


class _Text(str):
    """A str subclass, as an enum of str values is."""


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.builds(_Text, st.text(max_size=4)),
    st.decimals(allow_nan=True, places=None),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])),
    st.uuids(),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.dictionaries(st.integers(), inner, max_size=3),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(types.MappingProxyType),
    ),
    max_leaves=20,
)


@given(_values)
def test_the_fast_paths_canonicalize_as_the_rules_do(value: Any) -> None:
    assert _canonical(value) == _canonical_by_the_rules(value)
    assert request_hash({"value": value}) == _hash_by_the_rules({"value": value})


def test_a_stored_hash_is_still_the_hash_of_its_request() -> None:
    # A sale as the intake normalizes it; the digest was computed when the rules were first
    # written. A change here would make every stored order a 409 on its replay.
    body = {
        "program_id": uuid.UUID("0190a5a0-0000-7000-8000-000000000001"),
        "type": "sale",
        "order_id": "A-1001",
        "amount": Decimal("10.50"),
        "currency": "EUR",
        "occurred_at": datetime(2026, 12, 4, 16, 30, tzinfo=timezone(timedelta(hours=1))),
        "click_id": None,
        "promo_code": "SPRING",
        "customer_id": "c-9",
        "customer_email": None,
        "items": [
            {"sku": "SKU-1", "category": "shoes", "amount": Decimal("10.500"), "quantity": 2}
        ],
        "metadata": {"note": "café", "n": 3, "f": 1.5, "nested": [True, None, {"z": 1, "a": 2}]},
    }
    assert (
        request_hash(body).hex()
        == "fe63a26c3c3f9826205029636d434f14325ac6144ba34774cfbc3287e122299c"
    )
