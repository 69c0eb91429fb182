"""The event types, as DESIGN names them."""

from __future__ import annotations

CONVERSION_EVENTS = frozenset(
    {"conversion.created", "conversion.held", "conversion.approved", "conversion.rejected"}
)
EVENT_TYPES = CONVERSION_EVENTS | frozenset(
    {
        "refund.created",
        "commission.created",
        "payout_run.created",
        "payout.paid",
        "payout.failed",
        "partner.created",
        "partner.updated",
        "deal.created",
        "deal.approved",
        "deal.rejected",
        "dispute.created",
        "dispute.resolved",
        "application.created",
    }
)
ALL = "*"
