"""Text PostgreSQL cannot store is a 422 naming the field, never a 500."""

import pytest

from service.kit.text import unstorable
from service.redirect.location import passthrough_params
from tests.helpers import error_fields


def test_unstorable_finds_the_path():
    assert unstorable({"a": [1, {"b": "x\x00"}]}) == "a[1].b"
    assert unstorable({"a": {"k\x00": 1}}) == "a"
    assert unstorable({"a": "\ud800"}) == "a"
    assert unstorable({"a": "fine \u00e9 \U0001f600"}) is None


@pytest.mark.parametrize(
    "body,field",
    [
        ('{"name": "x\\u0000y", "email": "a@b.example"}', "name"),
        ('{"name": "x", "email": "n@b.example", "metadata": {"k": ["\\ud800"]}}', "metadata.k[0]"),
        (
            '{"name": "x", "email": "n@b.example", "payout_details": {"\\u0000": 1}}',
            "payout_details",
        ),
    ],
)
async def test_partner_body_with_nul_or_lone_surrogate(client, admin, body, field):
    r = await client.post(
        "/v1/partners", content=body.encode(), headers={**admin, "content-type": "application/json"}
    )
    assert error_fields(r) == [field]


async def test_query_parameter_with_nul(client, admin):
    r = await client.get("/v1/promo-codes", params={"code": "a\x00"}, headers=admin)
    assert error_fields(r) == ["code"]


def test_redirect_passthrough_drops_control_characters():
    assert passthrough_params(b"sub1=a%00b%0Ac&sub2=%00") == [("sub1", "abc")]
