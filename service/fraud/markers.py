"""Paid-ads click markers: query parameters an ad network appends to the URL it sends a
visitor to. The redirect keeps which of these a click came with (names only, never the
values); the `paid_traffic` rule chooses among them."""

from __future__ import annotations

# Google (gclid, and gbraid/wbraid for iOS app and web-to-app), Google display (dclid),
# Meta, Microsoft, TikTok, X, LinkedIn, Yandex, Pinterest, Reddit, Snapchat, Quora.
PAID_MARKERS: tuple[str, ...] = (
    "gclid",
    "gbraid",
    "wbraid",
    "dclid",
    "fbclid",
    "msclkid",
    "ttclid",
    "twclid",
    "li_fat_id",
    "yclid",
    "epik",
    "rdt_cid",
    "sccid",
    "qclid",
)
DEFAULT_MARKERS: tuple[str, ...] = (
    "gclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "msclkid",
    "ttclid",
    "twclid",
    "li_fat_id",
)
_BY_BYTES = {m.encode("ascii"): m for m in PAID_MARKERS}


def markers_in(query_string: bytes) -> list[str] | None:
    """The paid-ads markers present in a raw query string, in list order; None when none."""
    found: set[str] | None = None
    for segment in query_string.split(b"&"):
        name = _BY_BYTES.get(segment.partition(b"=")[0])
        if name is not None:
            if found is None:
                found = set()
            found.add(name)
    if found is None:
        return None
    return [m for m in PAID_MARKERS if m in found]
