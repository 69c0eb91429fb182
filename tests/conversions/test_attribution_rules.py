"""The pure attribution choice, by example and by property."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from service.conversions.attribution import METHODS, Candidate, choose

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_first_holding_method_wins_and_earlier_ones_say_why():
    found = {
        "promo_code": Candidate(reason="promo code expired"),
        "click": Candidate(partner_id=A),
        "customer": Candidate(partner_id=B),
    }
    decision = choose(["promo_code", "click", "customer"], found)
    assert decision.method == "click" and decision.partner_id == A
    assert decision.reasons == (("promo_code", "promo code expired"),)


def test_order_is_the_programs():
    found = {"promo_code": Candidate(partner_id=A), "click": Candidate(partner_id=B)}
    assert choose(["click", "promo_code"], found).partner_id == B
    assert choose(["promo_code", "click"], found).partner_id == A


def test_none_holds_means_unattributed_with_every_reason():
    found = {m: Candidate(reason=f"{m} missing") for m in METHODS}
    decision = choose(list(METHODS), found)
    assert decision.method is None and decision.partner_id is None
    assert [m for m, _ in decision.reasons] == list(METHODS)
    assert decision.as_json()["partner_id"] is None


candidates = st.one_of(
    st.builds(Candidate, reason=st.sampled_from(["expired", "invalid", "none"])),
    st.builds(Candidate, partner_id=st.sampled_from([A, B, C])),
)


@given(
    order=st.permutations(list(METHODS)).flatmap(lambda p: st.integers(1, 3).map(lambda n: p[:n])),
    found=st.fixed_dictionaries({m: candidates for m in METHODS}),
)
def test_winner_is_the_first_that_holds(order, found):
    decision = choose(order, found)
    holding = [m for m in order if found[m].holds]
    if holding:
        assert decision.method == holding[0]
        assert decision.partner_id == found[holding[0]].partner_id
        assert [m for m, _ in decision.reasons] == order[: order.index(holding[0])]
    else:
        assert decision.method is None
        assert [m for m, _ in decision.reasons] == list(order)
    assert all(reason for _, reason in decision.reasons)
