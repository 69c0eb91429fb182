"""HmacSha256 is hmac.digest(key, message, "sha256") with the key prepared once."""

import hmac
import os

import pytest

from service.kit.keyedhash import HmacSha256


@pytest.mark.parametrize("key_len", [0, 1, 16, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("message", [b"", b"v\x0010.0.0.1\x00Mozilla/5.0", os.urandom(300)])
def test_same_digest_as_hmac(key_len: int, message: bytes) -> None:
    key = os.urandom(key_len)
    mac = HmacSha256(key)
    assert mac.digest(message) == hmac.digest(key, message, "sha256")
    # The prepared states are copied, never used up.
    assert mac.digest(message) == hmac.digest(key, message, "sha256")
