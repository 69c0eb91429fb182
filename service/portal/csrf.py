"""CSRF tokens: each form carries an HMAC of the session's token, checked on every POST.

The token is derived, not stored: only the browser holding the session cookie can have it,
and a page of another site can neither read it nor guess it.
"""

from __future__ import annotations

import hashlib
import hmac

FIELD = "csrf_token"


def token_for(session_token: str) -> str:
    """The CSRF token of a session."""
    return hmac.new(session_token.encode(), b"portal-csrf", hashlib.sha256).hexdigest()


def valid(session_token: str, presented: str | None) -> bool:
    """Whether a form's token is the session's (in constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(token_for(session_token), presented)
