import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.tracking.clickid import ClickId, ClickIdInvalid, ClickIdSigner, parse_keys
from tests.fraud.factories import legacy_token

K1 = b"k1-secret-0123456789abcdef"
K2 = b"k2-secret-fedcba9876543210"
LINK = uuid.UUID("0b9f6a2e-3c1d-4e5f-8a7b-9c0d1e2f3a4b")
NOW = datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=UTC)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def signer() -> ClickIdSigner:
    return ClickIdSigner({"k1": K1, "k2": K2}, current_key_id="k2")


def test_round_trip(signer: ClickIdSigner) -> None:
    issued = signer.issue(LINK, NOW)
    verified = signer.verify(issued.token)
    assert verified == issued
    assert verified.key_id == "k2"
    assert verified.link_id == LINK
    assert verified.clicked_at == datetime(2026, 11, 22, 10, 30, 15, 123000, tzinfo=UTC)
    assert verified.clicked_at.tzinfo is UTC
    assert len(verified.nonce) >= 8


def test_token_shape(signer: ClickIdSigner) -> None:
    token = signer.issue(LINK, NOW).token
    assert token.startswith("c2")
    assert len(token) == 72
    assert set(token[2:]) <= set(ALPHABET)


def test_other_time_zone_is_normalised(signer: ClickIdSigner) -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert signer.verify(signer.issue(LINK, local).token).clicked_at == NOW.replace(
        microsecond=123000
    )


def test_naive_time_refused(signer: ClickIdSigner) -> None:
    with pytest.raises(ValueError):
        signer.issue(LINK, datetime(2026, 1, 1))


def test_every_single_character_tamper_fails(signer: ClickIdSigner) -> None:
    token = signer.issue(LINK, NOW).token
    for i, original in enumerate(token):
        neighbour = ALPHABET[(ALPHABET.index(original) + 1) % 64] if original in ALPHABET else "A"
        for replacement in (neighbour, "+", "/", "="):
            if replacement == original:
                continue
            tampered = token[:i] + replacement + token[i + 1 :]
            with pytest.raises(ClickIdInvalid):
                signer.verify(tampered)


def test_every_last_character_variant_fails(signer: ClickIdSigner) -> None:
    # The last base64 character carries spare bits; no other spelling may verify.
    token = signer.issue(LINK, NOW).token
    for c in ALPHABET:
        if c != token[-1]:
            with pytest.raises(ClickIdInvalid):
                signer.verify(token[:-1] + c)


def test_truncated_and_extended_tokens_are_malformed(signer: ClickIdSigner) -> None:
    token = signer.issue(LINK, NOW).token
    for bad in (
        token[:-1],
        token[:-4],
        token + "A",
        token + "AAAA",
        "",
        "c2",
        "c1" + token[2:],
        "c3" + token[2:],
        token[2:],
        token + "é",
        " " + token,
    ):
        with pytest.raises(ClickIdInvalid) as info:
            signer.verify(bad)
        assert info.value.reason == "malformed"


def _rebuild(token: str, mutate: Callable[[bytearray], None]) -> str:
    body = token[2:]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    mutate(raw)
    return token[:2] + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_swapped_link_id_fails(signer: ClickIdSigner) -> None:
    token = signer.issue(LINK, NOW).token
    other = uuid.uuid4()

    def swap(raw: bytearray) -> None:
        raw[3:19] = other.bytes

    with pytest.raises(ClickIdInvalid) as info:
        signer.verify(_rebuild(token, swap))
    assert info.value.reason == "signature invalid"


def test_shifted_time_fails(signer: ClickIdSigner) -> None:
    token = signer.issue(LINK, NOW).token

    def shift(raw: bytearray) -> None:
        raw[24] ^= 0x01

    with pytest.raises(ClickIdInvalid) as info:
        signer.verify(_rebuild(token, shift))
    assert info.value.reason == "signature invalid"


def test_bot_flag_is_signed(signer: ClickIdSigner) -> None:
    human = signer.issue(LINK, NOW)
    bot = signer.issue(LINK, NOW, bot=True)
    assert human.bot is False and signer.verify(human.token).bot is False
    assert bot.bot is True and signer.verify(bot.token).bot is True

    def clear(raw: bytearray) -> None:
        raw[3 + 16 + 6] = 0  # the flags byte, after key id, link and time

    with pytest.raises(ClickIdInvalid) as info:
        signer.verify(_rebuild(bot.token, clear))
    assert info.value.reason == "signature invalid"


def test_version_1_ids_still_verify(signer: ClickIdSigner) -> None:
    token = legacy_token("k1", K1, LINK, NOW)
    assert len(token) == 70
    verified = signer.verify(token)
    assert verified.link_id == LINK and verified.key_id == "k1"
    assert verified.clicked_at == NOW.replace(microsecond=123000)
    assert verified.bot is None
    assert verified.click_uuid.version == 7
    with pytest.raises(ClickIdInvalid) as info:
        signer.verify("c2" + token[2:])
    assert info.value.reason == "malformed"


def test_unknown_key_id_fails() -> None:
    token = ClickIdSigner({"k9": K1}, "k9").issue(LINK, NOW).token
    with pytest.raises(ClickIdInvalid) as info:
        ClickIdSigner({"k1": K1}, "k1").verify(token)
    assert info.value.reason == "unknown key id"


def test_same_key_id_other_secret_fails() -> None:
    token = ClickIdSigner({"k1": K1}, "k1").issue(LINK, NOW).token
    with pytest.raises(ClickIdInvalid) as info:
        ClickIdSigner({"k1": K2}, "k1").verify(token)
    assert info.value.reason == "signature invalid"


def test_rotated_key_still_verifies() -> None:
    old = ClickIdSigner({"k1": K1}, "k1").issue(LINK, NOW)
    rotated = ClickIdSigner({"k1": K1, "k2": K2}, "k2")
    assert rotated.verify(old.token) == old
    assert rotated.issue(LINK, NOW).key_id == "k2"
    retired = ClickIdSigner({"k2": K2}, "k2")
    with pytest.raises(ClickIdInvalid):
        retired.verify(old.token)


def test_tokens_unique_across_10k_issues(signer: ClickIdSigner) -> None:
    issued = [signer.issue(LINK, NOW) for _ in range(10_000)]
    assert len({c.token for c in issued}) == 10_000
    assert len({c.click_uuid for c in issued}) == 10_000


def test_click_uuid_is_deterministic_and_time_ordered(signer: ClickIdSigner) -> None:
    first = signer.issue(LINK, NOW)
    later = signer.issue(LINK, NOW + timedelta(milliseconds=1))
    assert signer.verify(first.token).click_uuid == first.click_uuid
    assert first.click_uuid.version == 7
    assert first.click_uuid.variant == uuid.RFC_4122
    assert first.click_uuid < later.click_uuid
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert first.click_uuid.int >> 80 == (first.clicked_at - epoch) // timedelta(milliseconds=1)


def test_click_uuid_of_a_stored_click_never_changes() -> None:
    """Click rows are keyed by the id derived from the token: the derivation is fixed."""
    at = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    nonce = bytes(range(1, 11))
    cid = ClickId("k1", LINK, at, nonce, "c2-unused")
    assert cid.click_uuid == uuid.UUID("019ca945-0a7b-7010-880c-1014181c2024")


def test_click_id_is_frozen(signer: ClickIdSigner) -> None:
    issued: ClickId = signer.issue(LINK, NOW)
    with pytest.raises(AttributeError):
        issued.key_id = "x"  # type: ignore[misc]


def test_signer_refuses_bad_setup() -> None:
    with pytest.raises(ValueError):
        ClickIdSigner({}, "k1")
    with pytest.raises(ValueError):
        ClickIdSigner({"k1": K1}, "k2")
    with pytest.raises(ValueError):
        ClickIdSigner({"k1": b"short"}, "k1")
    with pytest.raises(ValueError):
        ClickIdSigner({"bad id": K1}, "bad id")


def test_parse_keys() -> None:
    b1 = base64.b64encode(K1).decode()
    b2 = base64.urlsafe_b64encode(K2).decode().rstrip("=")
    assert parse_keys(f"k1:{b1}, k2:{b2}") == {"k1": K1, "k2": K2}
    assert list(parse_keys(f"k2:{b2},k1:{b1},")) == ["k2", "k1"]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " , ",
        "k1",
        "k1:",
        ":c2VjcmV0",
        "k1:not base64!!",
        "k1:c2hvcnQ=",  # "short": too few bytes
        "k 1:" + base64.b64encode(K1).decode(),
        "k1:{0},k1:{0}".format(base64.b64encode(K1).decode()),
    ],
)
def test_parse_keys_refuses_bad_spec(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_keys(spec)


def test_parse_keys_error_does_not_echo_secret() -> None:
    with pytest.raises(ValueError) as info:
        parse_keys("k1:c2hvcnQ=")
    assert "c2hvcnQ" not in str(info.value)
