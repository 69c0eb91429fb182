"""The sign-in link by email, when AFFILIATE_SMTP_URL names a server (aiosmtplib)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from service.config import Settings
from service.errors import ProblemError

log = logging.getLogger(__name__)
TIMEOUT = 10.0


class MailUnavailable(ProblemError):
    status, slug, title = 503, "mail-unavailable", "Service unavailable"


def message(settings: Settings, to: str, name: str, url: str) -> EmailMessage:
    """The email that carries a sign-in link."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = "Your sign-in link to the partner portal"
    msg.set_content(
        f"Hello {name},\n\n"
        f"Open this link to sign in to the partner portal:\n\n{url}\n\n"
        "It works once, within 24 hours. If you did not expect it, ignore this email.\n"
    )
    return msg


async def send_link(settings: Settings, to: str, name: str, url: str) -> None:
    """Send the link; a 503 when the mail server does not take it."""
    assert settings.smtp_url is not None
    parts = urlsplit(settings.smtp_url)
    implicit_tls = parts.scheme == "smtps"
    try:
        await aiosmtplib.send(
            message(settings, to, name, url),
            hostname=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit_tls,
            timeout=TIMEOUT,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("sign-in link not sent: %s: %s", type(exc).__name__, exc)
        raise MailUnavailable(
            "the mail server did not take the sign-in email; no link was made, try again",
            headers={"Retry-After": "5"},
        ) from exc
