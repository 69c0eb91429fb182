"""The redirect's Location header and the request's pass-through and deep-link params."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_plus, unquote_to_bytes

from service.tracking.urls import PATH_SAFE

MAX_PASSTHROUGH_PARAMS = 20
MAX_PASSTHROUGH_VALUE_LEN = 255
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_SUB_KEYS = frozenset({"sub1", "sub2", "sub3", "sub4", "sub5"})
_UTM_KEY_RE = re.compile(r"utm_[a-z0-9_]{1,28}")


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
    head, tail = _around_click_id(destination, click_param, tuple(fixed_params), tuple(passthrough))
    return f"{head}{_q(click_id)}{tail}"


# Everything in a Location but the click id is the same for every click on a link with the
# same pass-through params (most often none), and working it out was a tenth of a click's
# CPU. Bounded: a deep link or a pass-through value makes a new entry.
@lru_cache(maxsize=1024)
def _around_click_id(
    destination: str,
    click_param: str,
    fixed_params: tuple[tuple[str, str], ...],
    passthrough: tuple[tuple[str, str], ...],
) -> tuple[str, str]:
    # build_location's Location up to the click id's value, and from just after it.
    if not destination.isascii() or not destination.isprintable() or " " in destination:
        # Only reachable for a destination stored unnormalised; a raw space, control or
        # non-ASCII character must not reach the header. Existing %XX escapes are kept.
        destination = quote(destination, safe=PATH_SAFE)
    before_fragment, hash_sign, fragment = destination.partition("#")
    base, _, query = before_fragment.partition("?")

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
    parts.append(f"{_q(click_param)}=")
    head = f"{base}?{'&'.join(parts)}"
    after = [f"{_q(key)}={_q(value)}" for key, value in fixed_params if key != click_param]
    after.extend(f"{_q(key)}={_q(value)}" for key, value in passed)
    tail = "".join(f"&{part}" for part in after)
    return head, f"{tail}{hash_sign}{fragment}"


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
        # whole batch of other visitors' clicks; they carry no tracking meaning.
        if not value.isprintable():  # a printable text has no control character
            value = value.translate(_CONTROL)
        value = value[:MAX_PASSTHROUGH_VALUE_LEN]
        if not value:
            continue
        kept.append((key, value))
        if len(kept) == MAX_PASSTHROUGH_PARAMS:
            break
    return kept


_CONTROL = dict.fromkeys([*range(0x20), 0x7F])


# What is looked for in the raw bytes of a query, as ints: `b"%" in raw` first tries its
# operand as an int, raising and clearing a TypeError (some 1,800 instructions, five times
# a click), where an int's membership is a memchr and find() checks for a buffer first.
_PERCENT, _PLUS = ord("%"), ord("+")


def _decode(raw: bytes) -> str:
    if _PERCENT not in raw and _PLUS not in raw:  # most keys and values: nothing to unquote
        return raw.decode("utf-8", "replace")
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def deep_link_target(query_string: bytes) -> str | None:
    """The first `url` param of the request, percent-decoded, or None when there is none."""
    if query_string.find(b"url=") < 0:
        return None
    for segment in query_string.split(b"&"):
        if segment.startswith(b"url="):
            # A '+' is kept as '+': deep links are often pasted unencoded, and there a '+'
            # in the target's path or query means itself, not a space.
            return unquote_to_bytes(segment[4:]).decode("utf-8", "replace")
    return None
