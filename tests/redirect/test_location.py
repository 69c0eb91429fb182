import re
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.redirect.location import build_location, deep_link_target, passthrough_params
from service.tracking.urls import (
    DeepLinkRefused,
    allowed_domain_entry,
    host_allowed,
    validate_deep_link,
)

ALLOWED = ["shop.example", "*.shop.example", "127.0.0.1", "shop.example:8443", "127.0.0.1:8000"]


def loc(
    destination: str,
    fixed: Sequence[tuple[str, str]] = (),
    passthrough: Sequence[tuple[str, str]] = (),
    click_param: str = "aff_click_id",
) -> str:
    return build_location(
        destination,
        click_param=click_param,
        click_id="c1ABC-_",
        fixed_params=fixed,
        passthrough=passthrough,
    )


# --- build_location -------------------------------------------------------------------------


def test_plain_destination() -> None:
    assert loc("https://shop.example/p") == "https://shop.example/p?aff_click_id=c1ABC-_"


def test_existing_query_and_fragment_kept_byte_for_byte() -> None:
    assert (
        loc("https://shop.example/p?a=1&b=%7Ex+y&c#sec-2", fixed=[("tag", "t")])
        == "https://shop.example/p?a=1&b=%7Ex+y&c&aff_click_id=c1ABC-_&tag=t#sec-2"
    )


def test_fragment_with_question_mark_stays_fragment() -> None:
    assert (
        loc("https://shop.example/p#frag?x=1")
        == "https://shop.example/p?aff_click_id=c1ABC-_#frag?x=1"
    )


def test_empty_query_and_empty_segments() -> None:
    assert loc("https://shop.example/?") == "https://shop.example/?aff_click_id=c1ABC-_"
    assert loc("https://shop.example/?a=1&&b=2&") == (
        "https://shop.example/?a=1&b=2&aff_click_id=c1ABC-_"
    )


def test_unicode_spaces_and_reserved_characters_encoded() -> None:
    assert loc(
        "https://shop.example/p",
        fixed=[("campaign", "été 2026 & more"), ("path", "a/b?c=d#e")],
        passthrough=[("sub1", "ü+1")],
    ) == (
        "https://shop.example/p?aff_click_id=c1ABC-_"
        "&campaign=%C3%A9t%C3%A9%202026%20%26%20more"
        "&path=a%2Fb%3Fc%3Dd%23e&sub1=%C3%BC%2B1"
    )


def test_repeated_params_kept_in_order() -> None:
    assert loc(
        "https://shop.example/p?x=1&x=2",
        fixed=[("tag", "a"), ("tag", "b")],
        passthrough=[("sub1", "s1"), ("sub1", "s2")],
    ) == ("https://shop.example/p?x=1&x=2&aff_click_id=c1ABC-_&tag=a&tag=b&sub1=s1&sub1=s2")


def test_existing_click_param_replaced_not_duplicated() -> None:
    assert (
        loc("https://shop.example/p?aff_click_id=old&a=1&aff_click_id=older#f")
        == "https://shop.example/p?a=1&aff_click_id=c1ABC-_#f"
    )


def test_encoded_existing_click_param_replaced() -> None:
    assert (
        loc("https://shop.example/p?aff%5Fclick%5Fid=old&a=1")
        == "https://shop.example/p?a=1&aff_click_id=c1ABC-_"
    )


def test_fixed_param_replaces_destination_param() -> None:
    assert (
        loc("https://shop.example/p?tag=dest&a=1", fixed=[("tag", "fixed")])
        == "https://shop.example/p?a=1&aff_click_id=c1ABC-_&tag=fixed"
    )


def test_fixed_param_cannot_replace_click_param() -> None:
    assert (
        loc("https://shop.example/p", fixed=[("aff_click_id", "x"), ("tag", "t")])
        == "https://shop.example/p?aff_click_id=c1ABC-_&tag=t"
    )


def test_passthrough_replaces_destination_but_not_fixed_or_click() -> None:
    assert loc(
        "https://shop.example/p?utm_source=dest&utm_medium=dest",
        fixed=[("utm_medium", "affiliate")],
        passthrough=[
            ("utm_source", "newsletter"),
            ("utm_medium", "visitor"),
            ("sub1", "s"),
        ],
    ) == (
        "https://shop.example/p?aff_click_id=c1ABC-_&utm_medium=affiliate"
        "&utm_source=newsletter&sub1=s"
    )


def test_passthrough_cannot_set_click_param() -> None:
    assert (
        loc("https://shop.example/p", click_param="sub1", passthrough=[("sub1", "forged")])
        == "https://shop.example/p?sub1=c1ABC-_"
    )


def test_custom_click_param_name_encoded() -> None:
    assert loc("https://shop.example/", click_param="click id") == (
        "https://shop.example/?click%20id=c1ABC-_"
    )


def test_unnormalised_destination_made_header_safe() -> None:
    assert (
        loc("https://shop.example/caf\u00e9 menu?q=a b#x y")
        == "https://shop.example/caf%C3%A9%20menu?q=a%20b&aff_click_id=c1ABC-_#x%20y"
    )


# --- passthrough_params ---------------------------------------------------------------------


def test_passthrough_filters_and_decodes() -> None:
    qs = (
        b"url=https%3A%2F%2Fevil.test&sub1=a%20b&sub2=c+d&sub6=x&SUB3=y&utm_source=news"
        b"&utm_=z&utm_Campaign=w&utm_campaign=%C3%A9t%C3%A9&gclid=g&sub4=&sub5&utm%5Fterm=t"
        b"&utm_content=%FF"
    )
    assert passthrough_params(qs) == [
        ("sub1", "a b"),
        ("sub2", "c d"),
        ("utm_source", "news"),
        ("utm_campaign", "été"),
        ("utm_term", "t"),
        ("utm_content", "\ufffd"),
    ]


def test_passthrough_repeated_kept_in_order() -> None:
    assert passthrough_params(b"sub1=a&sub1=b") == [("sub1", "a"), ("sub1", "b")]


def test_passthrough_value_length_limited() -> None:
    [(key, value)] = passthrough_params(b"sub1=" + b"%C3%A9" * 400)
    assert key == "sub1"
    assert value == "é" * 255


def test_passthrough_count_limited() -> None:
    qs = b"&".join(b"utm_k%d=v" % i for i in range(50))
    kept = passthrough_params(qs)
    assert len(kept) == 20
    assert kept[0] == ("utm_k0", "v")
    assert kept[-1] == ("utm_k19", "v")


def test_passthrough_empty() -> None:
    assert passthrough_params(b"") == []
    assert passthrough_params(b"&&=&") == []


def _passthrough_reference(query: bytes) -> list[tuple[str, str]]:
    # passthrough_params as first written, with no fast path: every key and value unquoted,
    # every value's control characters removed.
    kept: list[tuple[str, str]] = []
    for segment in query.split(b"&"):
        raw_key, sep, raw_value = segment.partition(b"=")
        if not sep or not raw_value or len(raw_key) > 40:
            continue
        key = unquote_to_bytes(raw_key.replace(b"+", b" ")).decode("utf-8", "replace")
        if key not in {"sub1", "sub2", "sub3", "sub4", "sub5"} and not re.fullmatch(
            r"utm_[a-z0-9_]{1,28}", key
        ):
            continue
        value = unquote_to_bytes(raw_value[: 255 * 12].replace(b"+", b" "))
        text = value.decode("utf-8", "replace").translate(dict.fromkeys([*range(32), 127]))
        if text[:255]:
            kept.append((key, text[:255]))
        if len(kept) == 20:
            break
    return kept


_KEYS = st.sampled_from(
    [b"sub1", b"sub2", b"utm_source", b"utm_x", b"utm_%41", b"url", b"", b"s+b"]
)
_VALUE_PARTS = st.sampled_from(
    [
        b"a",
        b" ",
        b"+",
        b"%",
        b"%2",
        b"%41",
        b"%20",
        b"%C3%A9",
        b"%00",
        b"%1f",
        b"%7F",
        b"=",
        b"\x00",
        b"\x1f",
        b"\x7f",
        b"\xc3\xa9",
        b"\xff",
        b"\xe2\x80\x8b",
    ]
)
_SEGMENTS = st.tuples(_KEYS, st.sampled_from([b"=", b""]), st.lists(_VALUE_PARTS, max_size=8))


@given(st.lists(_SEGMENTS, max_size=24))
def test_passthrough_keeps_what_the_plain_unquoting_kept(
    segments: list[tuple[bytes, bytes, list[bytes]]],
) -> None:
    query = b"&".join(key + sep + b"".join(value) for key, sep, value in segments)
    assert passthrough_params(query) == _passthrough_reference(query)


# --- deep_link_target -----------------------------------------------------------------------


def test_deep_link_target() -> None:
    assert deep_link_target(b"") is None
    assert deep_link_target(b"sub1=a&curl=x") is None
    assert deep_link_target(b"sub1=a&url=https%3A%2F%2Fshop.example%2Fp%3Fq%3D1&url=x") == (
        "https://shop.example/p?q=1"
    )
    assert deep_link_target(b"url=https://shop.example/a+b") == "https://shop.example/a+b"
    assert deep_link_target(b"url=") == ""


# --- validate_deep_link ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/ok", "https://shop.example/ok"),
        ("HTTPS://SHOP.EXAMPLE/ok", "https://shop.example/ok"),
        ("http://shop.example", "http://shop.example/"),
        ("https://shop.example?x=1#f", "https://shop.example/?x=1#f"),
        ("https://shop.example./p", "https://shop.example/p"),
        ("https://shop.example:8443/p", "https://shop.example:8443/p"),
        ("https://shop.example:/p", "https://shop.example/p"),
        ("https://shop.example:443/p", "https://shop.example:443/p"),
        ("http://shop.example:80/p", "http://shop.example:80/p"),
        ("https://www.shop.example/p", "https://www.shop.example/p"),
        ("https://a.b.shop.example/p", "https://a.b.shop.example/p"),
        ("https://127.0.0.1:8000/p", "https://127.0.0.1:8000/p"),
        ("https://shop.example/caf\u00e9?q=\u00fc", "https://shop.example/caf%C3%A9?q=%C3%BC"),
        (
            "https://shop.example/p?next=https://evil.test",
            "https://shop.example/p?next=https://evil.test",
        ),
        ("https://shop\uff0eexample/p", "https://shop.example/p"),
    ],
)
def test_deep_link_allowed(url: str, expected: str) -> None:
    assert validate_deep_link(url, ALLOWED) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "//evil.test",
        "//shop.example/p",
        "/p",
        "shop.example/p",
        "javascript:alert(1)",
        "JavaScript://shop.example/%0Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://shop.example/p",
        "https:shop.example/p",
        "https:/shop.example/p",
        "https:///shop.example/p",
        "https://evil.test/p",
        "https://shop.example@evil.test",
        "https://user:pw@shop.example/p",
        "https://evil.test\\@shop.example",
        "https:/\\evil.test",
        "https:\\\\evil.test",
        "https://shop.example\\.evil.test",
        "https://shop.example%2f@evil.test",
        "https://shop.example%2F.evil.test",
        "https://shop.example%5c.evil.test",
        "https://evil.test%2fshop.example",
        "https://evil.test#@shop.example",
        "https://evil.test?.shop.example",
        "https://evil.test/.shop.example",
        "https://shop.example.evil.test",
        "https://evilshop.example",
        "https://shop.example..",
        "https://.shop.example",
        "https://sh op.example",
        " https://shop.example",
        "https://shop.example/p ",
        "https://shop.exa\tmple/p",
        "https://shop.example\n.evil.test",
        "https://shop.example/\r\nSet-Cookie:x=1",
        "https://shop.example\x00.evil.test",
        "https://shop.example\u200b/p",
        "https://shop.example\u00a0/p",
        "https://\u0455hop.example/p",  # Cyrillic dze
        "https://xn--hop-jqd.example/p",
        "https://shop.example\uff0f.evil.test",  # full-width solidus
        "https://shop.example\ufe6bevil.test",  # small commercial at
        "https://shop.example:0/p",
        "https://shop.example:8444/p",
        "https://www.shop.example:8443/p",
        "http://shop.example:443/p",
        "https://127.0.0.1:8001/p",
        "https://shop.example:99999/p",
        "https://shop.example:443x/p",
        "https://shop.example:80:80/p",
        "https://10.0.0.1/p",
        "https://2130706433/p",
        "https://0x7f.0.0.1/p",
        "https://127.1/p",
        "https://[::1]/p",
        "https://[::1/p",
        "https://" + "a" * 64 + ".shop.example/p",
        "https://shop.example/" + "a" * 3000,
    ],
)
def test_deep_link_refused(url: str) -> None:
    with pytest.raises(DeepLinkRefused):
        validate_deep_link(url, ALLOWED)


def test_deep_link_refused_reasons() -> None:
    cases = {
        "javascript:alert(1)": "scheme not allowed",
        "//evil.test": "scheme not allowed",
        "https://shop.example@evil.test": "credentials in URL",
        "https://shop.example%2f.evil.test": "encoded characters in host",
        "https://evil.test\\@shop.example": "forbidden characters",
        "https://evil.test/": "host not allowed",
        "https://shop.example:9000/": "port not allowed",
        "https://evil.test:8443/": "host not allowed",
        "https:/x": "not an absolute URL",
    }
    for url, reason in cases.items():
        with pytest.raises(DeepLinkRefused) as info:
            validate_deep_link(url, ALLOWED)
        assert info.value.reason == reason


def test_no_allowed_domains_refuses_everything() -> None:
    with pytest.raises(DeepLinkRefused):
        validate_deep_link("https://shop.example/", [])


# --- host_allowed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", False),
        ("a.example.com", True),
        ("a.b.example.com", True),
        ("A.EXAMPLE.COM.", True),
        ("evilexample.com", False),
        ("example.com.evil.test", False),
        ("exact.test", True),
        ("www.exact.test", False),
        ("b\u00fccher.test", True),
        ("xn--bcher-kva.test", True),
        ("bucher.test", False),
        ("192.0.2.1", True),
        ("192.0.2.2", False),
        ("[2001:db8::1]", True),
        ("", False),
        ("a b.example.com", False),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    domains = ["*.example.com", "exact.test", "B\u00fccher.test", "192.0.2.1", "2001:db8:0::1"]
    assert host_allowed(host, domains) is allowed


def test_wildcard_with_port_allows_that_port_only() -> None:
    domains = ["*.shop.example:8443"]
    assert validate_deep_link("https://a.shop.example:8443/", domains)
    for url in ("https://a.shop.example/", "https://a.shop.example:8444/"):
        with pytest.raises(DeepLinkRefused):
            validate_deep_link(url, domains)


def test_wildcard_never_matches_ip_literals() -> None:
    assert not host_allowed("1.2.3.4", ["*.3.4", "*.4"])


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("Shop.Example", "shop.example"),
        ("*.Shop.Example.", "*.shop.example"),
        ("b\u00fccher.test", "xn--bcher-kva.test"),
        ("::1", "[::1]"),
        ("10.0.0.1", "10.0.0.1"),
        ("Shop.Example:08443", "shop.example:8443"),
        ("*.shop.example:8443", "*.shop.example:8443"),
        ("[2001:db8::1]:8080", "[2001:db8::1]:8080"),
    ],
)
def test_allowed_domain_entry(entry: str, canonical: str) -> None:
    assert allowed_domain_entry(entry) == canonical


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "*",
        "*.",
        "*.com",
        "*.com:8443",
        "a.*.example",
        "ex*ample.com",
        "https://x.test",
        "a/b",
        "*.1.2",
        "shop.example:0",
        "shop.example:65536",
        "shop.example:http",
        "shop.example:",
        "[::1",
        "*.[::1]",
    ],
)
def test_allowed_domain_entry_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        allowed_domain_entry(entry)
