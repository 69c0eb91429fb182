"""Disputes: a partner claims a missing or declined sale; an admin resolves it."""
