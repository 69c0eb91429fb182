"""Self-verifying click ids: who, when and which link, signed under a key id.

Token format, version 2 (issued)::

    "c2" + base64url_nopad(payload + tag)

    payload = len(key_id):1 | key_id:ascii | link_id:16 | clicked_at_ms:6 (big endian)
              | flags:1 | nonce:10
    tag     = HMAC-SHA256(secret[key_id], b"c2" + payload)[:16]

flags bit 0 is set when the redirect judged the click a bot or a link preview.
Version 1 ("c1") is the same without the flags byte; such ids still verify, with
the bot flag unknown (None). With a two-character key id a c2 token is 72
characters (c1: 70). The tag covers the version prefix, so a token can never be
replayed as another format. A conversion checks the link, the attribution window and,
for a c2 id, the bot flag from the token alone; it reads the click row only for a c1
id's bot flag and for the fraud rules that look at the click (referrer, paid-traffic
markers, the visitor's other clicks). The click row's key is derived from the token too
(`click_uuid`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from service.kit.ids import RANDOM_BITS, uuid7_from
from service.kit.keyedhash import HmacSha256
from service.kit.time import ensure_aware

VERSION = "c2"
_VERSION_BYTES = VERSION.encode("ascii")
LEGACY_VERSION = "c1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_NONCE_LEN = 10  # 80 random bits: collisions are out of reach even at billions of clicks
_TAG_LEN = 16  # 128-bit tag: online forgery is hopeless and it costs only 5 characters more than 96
_TIME_LEN = 6  # 48-bit milliseconds last until the year 10889
_FLAGS_LEN = 1
_BOT = 0x01
_BOT_FLAG, _NO_FLAG = bytes([_BOT]), b"\x00"
# base64 to base64url, as base64.urlsafe_b64encode translates.
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FIXED_LEN = 16 + _TIME_LEN + _FLAGS_LEN + _NONCE_LEN + _TAG_LEN
# Fixed part's length per version: c1 had no flags byte.
_FIXED = {VERSION: _FIXED_LEN, LEGACY_VERSION: _FIXED_LEN - _FLAGS_LEN}
_MAX_KEY_ID_LEN = 16
_MIN_SECRET_LEN = 16
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
# Anything longer than the longest possible token is refused before decoding.
_MAX_TOKEN_LEN = len(VERSION) + (1 + _MAX_KEY_ID_LEN + _FIXED_LEN) * 4 // 3 + 2


class ClickIdInvalid(Exception):
    """A click id that is malformed, under an unknown key, or forged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ClickId(NamedTuple):
    """A click id's contents. A named tuple, immutable, because one is made on every click:
    a frozen dataclass took three times as long to build."""

    key_id: str
    link_id: uuid.UUID
    clicked_at: datetime
    nonce: bytes
    token: str
    # None for a version 1 id, which did not carry it.
    bot: bool | None = False

    @property
    def click_uuid(self) -> uuid.UUID:
        """Primary key of the click row: a UUIDv7 made of the click time and nonce."""
        # Time-ordered keys keep inserts at the right edge of the index; the nonce gives
        # 74 random bits, so the id is unique and derived from the token alone.
        rand = int.from_bytes(self.nonce, "big") >> (_NONCE_LEN * 8 - RANDOM_BITS)
        return uuid7_from((self.clicked_at - _EPOCH) // _MS, rand)


class ClickIdSigner:
    """Issues and verifies click ids; every key in `keys` verifies, the current one signs."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if not keys:
            raise ValueError("at least one click id key is required")
        for key_id, secret in keys.items():
            _check_key(key_id, secret)
        if current_key_id not in keys:
            raise ValueError(f"current click id key {current_key_id!r} is not among the keys")
        self._current_key_id = current_key_id
        kid = current_key_id.encode("ascii")
        # Signing and checking hash under a fixed key: prepared once (see HmacSha256).
        self._macs = {key_id: HmacSha256(secret) for key_id, secret in keys.items()}
        self._current_mac = self._macs[current_key_id]
        self._current_prefix = bytes([len(kid)]) + kid

    def issue(self, link_id: uuid.UUID, now: datetime, *, bot: bool = False) -> ClickId:
        """A new signed click id for `link_id` at `now` (kept to the millisecond)."""
        # Issued on every click: what it calls is C where it can be (a tenth of the
        # redirect's own CPU went here).
        ms = ((now if now.tzinfo is UTC else ensure_aware(now)) - _EPOCH) // _MS
        nonce = os.urandom(_NONCE_LEN)
        payload = b"".join(
            (
                self._current_prefix,
                link_id.bytes,
                ms.to_bytes(_TIME_LEN, "big"),
                _BOT_FLAG if bot else _NO_FLAG,
                nonce,
            )
        )
        tag = self._current_mac.digest(_VERSION_BYTES + payload)[:_TAG_LEN]
        encoded = binascii.b2a_base64(payload + tag, newline=False)
        token = VERSION + encoded.translate(_URLSAFE).rstrip(b"=").decode("ascii")
        return ClickId(self._current_key_id, link_id, _EPOCH + ms * _MS, nonce, token, bot)

    def verify(self, token: str) -> ClickId:
        """The click id inside `token`, or ClickIdInvalid saying why not."""
        version = token[:2]
        fixed_len = _FIXED.get(version)
        if fixed_len is None or len(token) > _MAX_TOKEN_LEN:
            raise ClickIdInvalid("malformed")
        body = token[2:]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise ClickIdInvalid("malformed") from None
        # The decoder skips stray characters and ignores the spare low bits of the last
        # one; re-encoding makes exactly one spelling of each token valid.
        if base64.urlsafe_b64encode(raw).rstrip(b"=") != body.encode("ascii"):
            raise ClickIdInvalid("malformed")
        if not raw:
            raise ClickIdInvalid("malformed")
        kid_len = raw[0]
        if not 1 <= kid_len <= _MAX_KEY_ID_LEN or len(raw) != 1 + kid_len + fixed_len:
            raise ClickIdInvalid("malformed")
        try:
            key_id = raw[1 : 1 + kid_len].decode("ascii")
        except UnicodeDecodeError:
            raise ClickIdInvalid("malformed") from None
        mac = self._macs.get(key_id)
        if mac is None:
            raise ClickIdInvalid("unknown key id")
        payload, tag = raw[:-_TAG_LEN], raw[-_TAG_LEN:]
        expected = mac.digest(version.encode("ascii") + payload)[:_TAG_LEN]
        if not hmac.compare_digest(tag, expected):
            raise ClickIdInvalid("signature invalid")
        pos = 1 + kid_len
        link_id = uuid.UUID(bytes=payload[pos : pos + 16])
        pos += 16
        ms = int.from_bytes(payload[pos : pos + _TIME_LEN], "big")
        pos += _TIME_LEN
        bot: bool | None = None
        if version == VERSION:
            bot = bool(payload[pos] & _BOT)
            pos += _FLAGS_LEN
        return ClickId(
            key_id=key_id,
            link_id=link_id,
            clicked_at=_EPOCH + ms * _MS,
            nonce=payload[pos:],
            token=token,
            bot=bot,
        )


def _check_key(key_id: str, secret: bytes) -> None:
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError(
            f"click id key id {key_id!r} must be 1-16 characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    if len(secret) < _MIN_SECRET_LEN:
        raise ValueError(
            f"click id key {key_id!r} is too short: at least {_MIN_SECRET_LEN} bytes are required"
        )


def parse_keys(spec: str) -> dict[str, bytes]:
    """Keys from "k1:<base64>,k2:<base64>" (standard or url-safe base64, padding optional)."""
    keys: dict[str, bytes] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not sep or not key_id or not encoded:
            # The secret is never echoed, only the key id.
            raise ValueError(
                f"click id key entry {key_id or '?'!r} must look like 'id:base64secret'"
            )
        if key_id in keys:
            raise ValueError(f"click id key id {key_id!r} appears twice")
        try:
            secret = base64.b64decode(
                encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                validate=True,
            )
        except (binascii.Error, ValueError):
            raise ValueError(f"click id key {key_id!r} is not valid base64") from None
        _check_key(key_id, secret)
        keys[key_id] = secret
    if not keys:
        raise ValueError("no click id keys given: expected 'id:base64secret[,id:base64secret...]'")
    return keys
