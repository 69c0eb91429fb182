"""Adjustments: an admin's bonus or correction, a ledger entry like any other."""
