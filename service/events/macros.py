"""Postback URL templates: `{macro}` names replaced by URL-encoded values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

MACROS = frozenset(
    {
        "event",
        "conversion_id",
        "click_id",
        "sub1",
        "sub2",
        "sub3",
        "sub4",
        "sub5",
        "type",
        "amount",
        "commission",
        "currency",
        "status",
        "occurred_at",
    }
)
_MACRO = re.compile(r"\{([^{}]*)\}")


def unknown_macros(template: str) -> list[str]:
    """The `{names}` of a template that are not macros, in order."""
    return [m for m in _MACRO.findall(template) if m not in MACROS]


def authority_has_macro(template: str) -> bool:
    """Whether a macro sits in the scheme, host or port, where it could change the target."""
    scheme, sep, rest = template.partition("://")
    if not sep:
        return "{" in scheme
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return "{" in scheme or "{" in authority


def render(template: str, values: Mapping[str, str | None]) -> str:
    """The template with each macro replaced by its value, percent-encoded ('' when absent)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return quote(value if value is not None else "", safe="")

    return _MACRO.sub(one, template)


def sample(template: str) -> str:
    """The template filled with placeholder values, to check the URL it makes."""
    return render(template, dict.fromkeys(MACROS, "0"))
