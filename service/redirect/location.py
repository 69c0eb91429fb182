"""The redirect's Location header, request pass-through params and deep-link checks."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_plus, unquote_to_bytes

from service.kit.urls import DEFAULT_PORTS

MAX_PASSTHROUGH_PARAMS = 20
MAX_PASSTHROUGH_VALUE_LEN = 255
MAX_DEEP_LINK_LEN = 2048
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_SUB_KEYS = frozenset({"sub1", "sub2", "sub3", "sub4", "sub5"})
_UTM_KEY_RE = re.compile(r"utm_[a-z0-9_]{1,28}")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG treats a host whose last label is a number (decimal, octal or 0x hex) as IPv4.
_NUMERIC_LABEL_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
# Printable ASCII stays as written; only what a Location header must not carry raw is encoded.
_PATH_SAFE = "!#$%&'()*+,-./:;=?@[]^_{|}~"


class DeepLinkRefused(Exception):
    """A deep link that is not an http(s) URL on one of the program's allowed hosts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def build_location(
    destination: str,
    *,
    click_param: str,
    click_id: str,
    fixed_params: Sequence[tuple[str, str]],
    passthrough: Sequence[tuple[str, str]],
) -> str:
    """The destination with the click id, the link's fixed params and pass-through params added.

    Precedence, lowest first: the destination's own params < pass-through params from the
    request < the link's fixed params < the click param. A key set by a higher layer removes
    every occurrence of it from the lower ones, so a visitor can never change the click id or
    a fixed param, but the request's utm_source does replace one already in the destination.
    Kept destination params stay byte for byte where they were (empty `&&` segments dropped);
    the added ones follow in the order click param, fixed params, pass-through, each layer's
    repeated keys kept in order, percent-encoded with %20 for spaces. The fragment stays last.
    """
    if not destination.isascii() or not destination.isprintable() or " " in destination:
        # Only reachable for a destination stored unnormalised; a raw space, control or
        # non-ASCII character must not reach the header. Existing %XX escapes are kept.
        destination = quote(destination, safe=_PATH_SAFE)
    head, hash_sign, fragment = destination.partition("#")
    base, _, query = head.partition("?")

    taken = {click_param, *(key for key, _ in fixed_params)}
    passed = [(key, value) for key, value in passthrough if key not in taken]
    taken.update(key for key, _ in passed)

    parts: list[str] = []
    if query:
        for segment in query.split("&"):
            if not segment:
                continue
            raw_key = segment.partition("=")[0]
            key = unquote_plus(raw_key) if "%" in raw_key or "+" in raw_key else raw_key
            if key not in taken:
                parts.append(segment)
    parts.append(f"{_q(click_param)}={_q(click_id)}")
    parts.extend(f"{_q(key)}={_q(value)}" for key, value in fixed_params if key != click_param)
    parts.extend(f"{_q(key)}={_q(value)}" for key, value in passed)
    return f"{base}?{'&'.join(parts)}{hash_sign}{fragment}"


def _q(text: str) -> str:
    # Keys and click ids are nearly always unreserved already; skipping quote() for them
    # is a fifth of build_location's time.
    return text if _UNRESERVED(text) else quote(text, safe="")


def passthrough_params(query_string: bytes) -> list[tuple[str, str]]:
    """The request's sub1..sub5 and utm_* params, in order, at most 20, values cut to 255 chars."""
    kept: list[tuple[str, str]] = []
    if not query_string:
        return kept
    for segment in query_string.split(b"&"):
        raw_key, sep, raw_value = segment.partition(b"=")
        if not sep or not raw_value or len(raw_key) > 40:
            continue
        key = _decode(raw_key)
        if key not in _SUB_KEYS and not (key.startswith("utm_") and _UTM_KEY_RE.fullmatch(key)):
            continue
        # Decoding first means the cut never splits a %XX escape or a UTF-8 sequence.
        value = _decode(raw_value[: MAX_PASSTHROUGH_VALUE_LEN * 12])
        # Control characters (NUL above all, which PostgreSQL cannot store) would fail the
        # whole COPY batch of other visitors' clicks; they carry no tracking meaning.
        value = value.translate(_CONTROL)[:MAX_PASSTHROUGH_VALUE_LEN]
        if not value:
            continue
        kept.append((key, value))
        if len(kept) == MAX_PASSTHROUGH_PARAMS:
            break
    return kept


_CONTROL = dict.fromkeys([*range(0x20), 0x7F])


def _decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def deep_link_target(query_string: bytes) -> str | None:
    """The first `url` param of the request, percent-decoded, or None when there is none."""
    if b"url=" not in query_string:
        return None
    for segment in query_string.split(b"&"):
        if segment.startswith(b"url="):
            # A '+' is kept as '+': deep links are often pasted unencoded, and there a '+'
            # in the target's path or query means itself, not a space.
            return unquote_to_bytes(segment[4:]).decode("utf-8", "replace")
    return None


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
        tail = quote(tail, safe=_PATH_SAFE)
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
