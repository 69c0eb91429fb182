from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.conversions.fraud import MIN_CLICK_TO_CONVERSION, FraudSignals, review_reasons

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_too_fast_after_click_is_held():
    signals = FraudSignals(NOW - timedelta(seconds=1), NOW, None, None)
    assert "after the click" in review_reasons(signals)[0]


def test_self_referral_is_held():
    same = b"x" * 32
    assert "self-referral" in review_reasons(FraudSignals(None, NOW, same, same))[0]


@given(st.integers(0, 10**6))
def test_slow_enough_and_different_email_is_not_held(seconds):
    gap = MIN_CLICK_TO_CONVERSION + timedelta(seconds=seconds)
    assert review_reasons(FraudSignals(NOW - gap, NOW, b"a" * 32, b"b" * 32)) == []
