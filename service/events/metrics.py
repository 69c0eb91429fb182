"""Prometheus figures of the deliveries: outcomes, latency, and how far behind they are."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "affiliate_event_deliveries_total",
    "Event delivery attempts by target kind and outcome",
    ["kind", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "affiliate_event_delivery_seconds",
    "Time from request to response of a delivery attempt",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_LAG = Gauge(
    "affiliate_outbox_lag_seconds",
    "Age of the oldest delivery that is due and not yet done (0: none), as the worker last saw",
)
