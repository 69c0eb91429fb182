"""A conversion's answer written by orjson from its fields is byte for byte the JSON
pydantic's serializer writes for the validated ConversionOut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg.pgproto.pgproto as pgproto
from hypothesis import given
from hypothesis import strategies as st

from service.conversions.api import _dump, answer_json
from service.conversions.schemas import Attribution, ConversionOut, FraudHit

uuids = st.uuids() | st.uuids().map(lambda u: pgproto.UUID(str(u)))  # asyncpg's, as rows hold
times = st.datetimes(
    min_value=datetime(1970, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
text = st.text(max_size=12)  # unicode, control characters, separators
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too: orjson refuses, the model writes them
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
documents = st.dictionaries(text, json_values, max_size=4)
amounts = st.none() | st.from_regex(r"-?[0-9]{1,6}\.[0-9]{2}", fullmatch=True)


def in_order(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of these fields in this order, as conversion_body and entry_body make them
    (their order is the models', and the lean route's tests compare it with FastAPI's)."""
    return st.fixed_dictionaries(fields).map(lambda d: {k: d[k] for k in fields})


def entry() -> st.SearchStrategy[dict[str, Any]]:
    return in_order(
        {
            "id": uuids,
            "partner_id": uuids,
            "program_id": uuids,
            "conversion_id": st.none() | uuids,
            "refund_id": st.none() | uuids,
            "kind": st.sampled_from(["commission", "override", "reversal"]),
            "amount": st.from_regex(r"-?[0-9]{1,6}\.[0-9]{2}", fullmatch=True),
            "currency": st.sampled_from(["USD", "EUR", "JPY"]),
            "available_at": times,
            "payout_id": st.none() | uuids,
            "agreement_id": st.none() | uuids,
            "agreement_version": st.none() | st.integers(min_value=1, max_value=10**6),
            "created_at": times,
            "explain": documents,
        }
    )


bodies = in_order(
    {
        "id": uuids,
        "program_id": uuids,
        "type": st.sampled_from(["lead", "sale"]),
        "order_id": text,
        "status": st.sampled_from(["accepted", "review", "rejected"]),
        "review_reason": st.none() | text,
        "fraud": st.lists(
            in_order(
                {"rule": text, "action": st.sampled_from(["hold", "reject"]), "detail": text}
            ).map(FraudHit.model_validate),  # as conversion_body holds them
            max_size=2,
        ),
        "amount": amounts,
        "currency": st.sampled_from(["USD", "EUR"]),
        "program_amount": amounts,
        "program_currency": st.sampled_from(["USD", "EUR"]),
        "fx_rate": st.none() | st.just("1.0825"),
        "refunded_amount": st.just("0.00"),
        "occurred_at": times,
        "click_id": st.none() | text,
        "promo_code": st.none() | text,
        "customer_id": st.none() | text,
        "items": st.lists(documents, max_size=2),
        "metadata": documents,
        "attribution": in_order(
            {
                "partner_id": st.none() | uuids,
                "method": st.none() | st.sampled_from(["click", "promo_code", "customer"]),
                "reasons": st.lists(in_order({"method": text, "reason": text}), max_size=2),
                "detail": st.none() | st.dictionaries(text, text, max_size=2),
            }
        ).map(Attribution.model_validate),
        "commissions": st.lists(entry(), max_size=2),
        "created_at": times,
        "updated_at": times,
    }
)


@given(bodies)
def test_orjson_writes_what_the_model_writes(body):
    assert answer_json(body) == _dump(ConversionOut.model_validate(body), by_alias=True)
