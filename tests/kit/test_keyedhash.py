"""HmacSha256 is hmac.digest(key, message, "sha256") with the key prepared once."""

import hmac
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.kit.keyedhash import HmacSha256


@pytest.mark.parametrize("key_len", [0, 1, 16, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("message", [b"", b"v\x0010.0.0.1\x00Mozilla/5.0", os.urandom(300)])
def test_same_digest_as_hmac(key_len: int, message: bytes) -> None:
    key = os.urandom(key_len)
    mac = HmacSha256(key)
    assert mac.digest(message) == hmac.digest(key, message, "sha256")
    # The prepared states are copied, never used up.
    assert mac.digest(message) == hmac.digest(key, message, "sha256")


@given(key=st.binary(max_size=200), messages=st.lists(st.binary(max_size=300), max_size=4))
def test_any_key_and_messages_digest_as_hmac_does(key: bytes, messages: list[bytes]) -> None:
    mac = HmacSha256(key)
    for message in messages:
        assert mac.digest(message) == hmac.digest(key, message, "sha256")
