"""The pure payout rules: eligibility, carrying, the minimum over several programs."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.payouts.rules import TRANSITIONS, ProgramSlice, balances, is_eligible

P = uuid.uuid4()
A, B = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize(
    "payable,minimum,expected",
    [(4999, 5000, False), (5000, 5000, True), (5001, 5000, True), (0, 0, False), (-1, 0, False)],
)
def test_eligible_at_the_minimum_and_never_at_zero_or_below(payable, minimum, expected):
    assert is_eligible(payable, minimum) is expected


def _slice(program, payable, pending=0, on_hold=0, currency="USD"):
    return ProgramSlice(P, currency, program, payable, 1, pending, on_hold)


def test_balances_fold_programs_and_take_the_smallest_minimum():
    rows = balances(
        [_slice(A, 700, pending=5), _slice(B, 500, on_hold=7), _slice(A, 3, currency="EUR")],
        {(P, A): 5000, (P, B): 1000},
    )
    usd, eur = sorted(rows, key=lambda b: b.currency, reverse=True)
    assert (usd.payable, usd.pending, usd.on_hold, usd.min_payout) == (1200, 5, 7, 1000)
    assert usd.eligible and usd.carried == 0
    assert eur.min_payout == 5000 and not eur.eligible and eur.carried == 3


def test_negative_balance_is_carried():
    (b,) = balances([_slice(A, -2500)], {(P, A): 0})
    assert not b.eligible and b.carried == -2500


def test_paid_and_failed_are_final():
    assert TRANSITIONS["open"] == {"paid", "failed"}
    assert not TRANSITIONS["paid"] and not TRANSITIONS["failed"]


@given(
    st.lists(
        st.tuples(st.uuids(), st.sampled_from(["EUR", "USD", "JPY"]), st.integers(-999, 999)),
        max_size=40,
    )
)
def test_balances_come_in_the_order_of_the_partner_ids_text_then_currency(rows):
    program = uuid.UUID(int=1)
    slices = [ProgramSlice(pid, cur, program, amount, 1, 0, 0) for pid, cur, amount in rows]
    out = balances(slices, {})
    keys = [(str(b.partner_id), b.currency) for b in out]
    assert keys == sorted({(str(pid), cur) for pid, cur, _ in rows})
