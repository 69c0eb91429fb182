"""Payouts: previews, idempotent runs, paid and failed, reconciliation and reports."""
