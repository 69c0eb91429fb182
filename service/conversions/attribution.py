"""Choosing who a conversion belongs to: pure, over what each method found."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Method = Literal["promo_code", "click", "customer"]
METHODS: tuple[Method, ...] = ("promo_code", "click", "customer")


@dataclass(frozen=True)
class Candidate:
    """What one method found: a partner, or why it holds no partner."""

    partner_id: uuid.UUID | None = None
    reason: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """True when the method names a partner."""
        return self.partner_id is not None and self.reason is None


@dataclass(frozen=True)
class Decision:
    """The winning method and partner, and why each method tried before it failed."""

    method: Method | None
    partner_id: uuid.UUID | None
    reasons: tuple[tuple[Method, str], ...]
    detail: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The API's `attribution` object."""
        return {
            "partner_id": str(self.partner_id) if self.partner_id else None,
            "method": self.method,
            "reasons": [{"method": m, "reason": r} for m, r in self.reasons],
            **({"detail": dict(self.detail)} if self.detail else {}),
        }


def choose(order: Sequence[Method], found: Mapping[Method, Candidate]) -> Decision:
    """The first method in `order` that holds wins; earlier ones say why they did not."""
    reasons: list[tuple[Method, str]] = []
    for method in order:
        candidate = found.get(method) or Candidate(reason="not tried")
        if candidate.holds:
            return Decision(method, candidate.partner_id, tuple(reasons), candidate.detail)
        reasons.append((method, candidate.reason or "no partner"))
    return Decision(None, None, tuple(reasons))
