"""URL and host name checks shared by programs and links."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A URL on its scheme's own port needs no port in a program's allowed_domains.
DEFAULT_PORTS = {"http": 80, "https": 443}


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def is_hostname(name: str, *, allow_wildcard: bool = False) -> bool:
    """A DNS host name (lower-case labels), optionally '*.' + host name."""
    if allow_wildcard and name.startswith("*."):
        name = name[2:]
    if not name or len(name) > 253 or name != name.lower():
        return False
    labels = name.split(".")
    return len(labels) >= 1 and all(_LABEL.match(label) for label in labels)


def check_http_url(value: str) -> str | None:
    """Why `value` is not an absolute http(s) URL with a host, or None when it is."""
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value) or "\\" in value:
        return "must not contain spaces, control characters or backslashes"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an absolute http(s) URL"
    if not parts.hostname:
        return "must have a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry user information"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    if len(value) > 2048:
        return "must be at most 2048 characters"
    return None


def host_of(url: str) -> str:
    """The lower-case host of a URL already checked by check_http_url."""
    return (urlsplit(url).hostname or "").rstrip(".").lower()


def authority_of(url: str) -> str:
    """The host of a URL already checked by check_http_url, with its port unless the default."""
    parts = urlsplit(url)
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(parts.scheme):
        return host_of(url)
    return f"{host_of(url)}:{port}"
