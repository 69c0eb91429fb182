"""Payouts: previews, idempotent runs, paid and failed, and the paid report."""
