"""Fraud rules: pure checks that hold a conversion for review, with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A purchase completed this soon after its click is more likely a bot or an
# injected click than a person who browsed and paid.
MIN_CLICK_TO_CONVERSION = timedelta(seconds=3)


@dataclass(frozen=True)
class FraudSignals:
    """Facts about a conversion that the rules look at."""

    clicked_at: datetime | None
    occurred_at: datetime
    customer_email_hash: bytes | None
    partner_email_hash: bytes | None


def review_reasons(signals: FraudSignals) -> list[str]:
    """Why the conversion should be held for review; empty when it should not."""
    reasons = []
    if signals.clicked_at is not None:
        gap = signals.occurred_at - signals.clicked_at
        if timedelta(0) <= gap < MIN_CLICK_TO_CONVERSION:
            reasons.append(
                f"converted {gap.total_seconds():.1f}s after the click "
                f"(under {MIN_CLICK_TO_CONVERSION.total_seconds():.0f}s)"
            )
    if (
        signals.customer_email_hash is not None
        and signals.partner_email_hash is not None
        and signals.customer_email_hash == signals.partner_email_hash
    ):
        reasons.append("self-referral: the customer's email is the partner's")
    return reasons
