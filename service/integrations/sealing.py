"""Signing secrets sealed at rest.

A shop's signature is an HMAC, which only the secret itself can check: the secret cannot be
hashed like an API key. It is sealed with AES-GCM under a key that, when AFFILIATE_HASH_KEY
is set, is derived from it and so lives outside the database: a dump then holds ciphertext
only. Without it, the sealing key is kept in the database (service_secrets), and a dump of
the whole database reveals the secrets, and with them the power to forge a shop's events.
The integration's id is the associated data, so a sealed secret cannot be moved to another
integration's row.
"""

from __future__ import annotations

import os
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.models import ServiceSecret
from service.visitor_keys import derive

KEY_NAME = "integration_sealing_key"
NONCE_BYTES = 12


class SecretUnreadable(RuntimeError):
    """A sealed secret that the current key does not open (AFFILIATE_HASH_KEY changed)."""


async def sealing_key(session: AsyncSession, settings: Settings) -> bytes:
    """The key that seals signing secrets: from AFFILIATE_HASH_KEY, else the database's own."""
    if settings.hash_key:
        return derive(settings.hash_key.encode(), "integration-secrets")
    await session.execute(
        insert(ServiceSecret)
        .values(name=KEY_NAME, value=secrets.token_bytes(32))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    value = await session.scalar(select(ServiceSecret.value).where(ServiceSecret.name == KEY_NAME))
    assert value is not None
    return bytes(value)


def seal(key: bytes, integration_id: uuid.UUID, secret: str) -> bytes:
    """nonce || AES-GCM(secret), bound to the integration."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode(), integration_id.bytes)


def unseal(key: bytes, integration_id: uuid.UUID, sealed: bytes) -> str:
    """The secret a seal() made."""
    try:
        plain = AESGCM(key).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], integration_id.bytes
        )
    except InvalidTag as exc:
        raise SecretUnreadable(
            f"the signing secret of integration {integration_id} cannot be unsealed; "
            "was AFFILIATE_HASH_KEY changed?"
        ) from exc
    return plain.decode()
