"""URL policy: the http(s) URLs and host names the API accepts, and the deep links (host
and port) that a program's allowed_domains let the redirect send a visitor to."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, urlsplit

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


MAX_DEEP_LINK_LEN = 2048
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG treats a host whose last label is a number (decimal, octal or 0x hex) as IPv4.
_NUMERIC_LABEL_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
# Printable ASCII stays as written; only what a Location header must not carry raw is encoded.
PATH_SAFE = "!#$%&'()*+,-./:;=?@[]^_{|}~"


class DeepLinkRefused(Exception):
    """A deep link that is not an http(s) URL on one of the program's allowed hosts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_deep_link(url: str, allowed_domains: Sequence[str]) -> str:
    """The deep link, normalised, if it is an http(s) URL on an allowed host; else DeepLinkRefused."""
    if not url or len(url) > MAX_DEEP_LINK_LEN:
        raise DeepLinkRefused("malformed")
    # Browsers silently strip tabs and newlines and read '\' as '/', so a URL carrying any
    # of them means something other than what it seems to say.
    if not url.isprintable() or " " in url or "\\" in url:
        raise DeepLinkRefused("forbidden characters")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("http", "https"):
        raise DeepLinkRefused("scheme not allowed")
    if not rest.startswith("//"):
        raise DeepLinkRefused("not an absolute URL")
    rest = rest[2:]
    end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if i != -1 and i < end:
            end = i
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise DeepLinkRefused("credentials in URL")
    if "%" in authority:
        raise DeepLinkRefused("encoded characters in host")
    host, port = _split_port(authority)
    canonical = _canonical_host(host)
    if canonical is None:
        raise DeepLinkRefused("invalid host")
    other_port = int(port) if port and int(port) != DEFAULT_PORTS[scheme] else None
    allowed = _allowed(tuple(allowed_domains))
    if not _matches(canonical, other_port, allowed):
        if other_port is not None and _matches(canonical, None, allowed):
            raise DeepLinkRefused("port not allowed")
        raise DeepLinkRefused("host not allowed")
    if not tail.startswith("/"):
        tail = "/" + tail
    if not tail.isascii() or any(c in tail for c in '"<>`'):
        tail = quote(tail, safe=PATH_SAFE)
    return f"{scheme}://{canonical}{':' + port if port else ''}{tail}"


def _split_port(authority: str) -> tuple[str, str]:
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise DeepLinkRefused("invalid host")
        host, after = authority[: close + 1], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise DeepLinkRefused("invalid host")
        port = after[1:]
    else:
        host, _, port = authority.partition(":")
    if port:
        if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
            raise DeepLinkRefused("invalid port")
        port = str(int(port))
    return host, port


@lru_cache(maxsize=4096)
def _canonical_host(host: str) -> str | None:
    """Lowercase ASCII (IDNA) form of a host, IPv6 in brackets; None when it is no valid host."""
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    if host.endswith("."):
        host = host[:-1]
    if not host:
        return None
    if not host.isascii():
        try:
            # IDNA 2003 also folds full-width dots and letters; whatever it maps to is the
            # host that gets checked and written into the Location, so no reading differs.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower()
    if len(host) > 253:
        return None
    labels = host.split(".")
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        return None
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            # 0x7f.1, 2130706433 and friends: browsers read them as IPv4, we refuse them.
            return None
    return host


# (exact hosts, "*." suffixes) each with the port allowed (None: the scheme's default).
_Allowed = tuple[frozenset[tuple[str, int | None]], tuple[tuple[str, int | None], ...]]


@lru_cache(maxsize=1024)
def _allowed(entries: tuple[str, ...]) -> _Allowed:
    exact: set[tuple[str, int | None]] = set()
    suffixes: list[tuple[str, int | None]] = []
    for entry in entries:
        try:
            canonical = allowed_domain_entry(entry)
        except ValueError:
            continue  # stored before entries were checked; it never matched anything
        host, port = split_entry_port(canonical)
        if host.startswith("*."):
            suffixes.append((host[1:], port))
        else:
            exact.add((host, port))
    return frozenset(exact), tuple(suffixes)


def _matches(host: str, port: int | None, allowed: _Allowed) -> bool:
    exact, suffixes = allowed
    if (host, port) in exact:
        return True
    if host.startswith("["):
        return False
    if _NUMERIC_LABEL_RE.fullmatch(host.rpartition(".")[2]):
        # An IPv4 literal only ever matches when listed as such, never through a wildcard.
        return False
    return any(host.endswith(suffix) and port == p for suffix, p in suffixes)


def split_entry_port(entry: str) -> tuple[str, int | None]:
    """A canonical allowed_domains entry as (host part, port or None)."""
    if entry.startswith("["):
        close = entry.index("]")
        host, rest = entry[: close + 1], entry[close + 1 :]
    else:
        host, _, rest = entry.partition(":")
        rest = f":{rest}" if rest else ""
    return host, int(rest[1:]) if rest else None


def allowed_domain_entry(entry: str) -> str:
    """Canonical form of an allowed_domains entry, else ValueError.

    "shop.example", "*.shop.example" (a wildcard needs two labels after it), either with a
    ":port" that deep links on a non-default port need; an IP literal (stored ones keep
    working; new ones are refused by programs).
    """
    text = entry.strip()
    wildcard = text.startswith("*.")
    bare = text[2:] if wildcard else text
    port = ""
    if bare.startswith("["):
        close = bare.find("]")
        if close == -1:
            raise ValueError(f"allowed domain {entry!r} is not a host name")
        bare, port = bare[: close + 1], bare[close + 1 :]
        if port and not port.startswith(":"):
            raise ValueError(f"allowed domain {entry!r} is not a host name")
        port = port[1:]
        try:
            bare = f"[{ipaddress.IPv6Address(bare[1:-1]).compressed}]"
        except ValueError:
            raise ValueError(f"allowed domain {entry!r} is not a host name") from None
    elif bare.count(":") > 1:
        try:
            bare = f"[{ipaddress.IPv6Address(bare).compressed}]"
        except ValueError:
            raise ValueError(f"allowed domain {entry!r} is not a host name") from None
    elif ":" in bare:
        bare, _, port = bare.partition(":")
    if (port or text.endswith(":")) and not (
        port.isascii() and port.isdigit() and 0 < int(port) < 65536
    ):
        raise ValueError(f"allowed domain {entry!r} has an invalid port")
    suffix = f":{int(port)}" if port else ""
    if bare.startswith("["):
        if wildcard:
            raise ValueError(f"allowed domain {entry!r} is not a host name")
        return bare + suffix
    canonical = _canonical_host(bare) if bare and "*" not in bare else None
    if canonical is None:
        raise ValueError(f"allowed domain {entry!r} is not a host name")
    if wildcard and "." not in canonical:
        raise ValueError(f"allowed domain {entry!r}: '*.' needs at least two labels after it")
    if wildcard and _NUMERIC_LABEL_RE.fullmatch(canonical.rpartition(".")[2]):
        raise ValueError(f"allowed domain {entry!r} is not a host name")
    return f"*.{canonical}{suffix}" if wildcard else canonical + suffix


def is_ip_entry(canonical: str) -> bool:
    """True for an allowed_domains entry (canonical) that names an IP address, not a host."""
    host, _ = split_entry_port(canonical)
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed_domains: Sequence[str], port: int | None = None) -> bool:
    """True when `host` on `port` (None: the default) is listed exactly or under "*.domain"."""
    canonical = _canonical_host(host)
    return canonical is not None and _matches(canonical, port, _allowed(tuple(allowed_domains)))
