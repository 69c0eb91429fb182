"""The pure fraud rules: hand-worked cases and properties."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.fraud import rules as fr
from service.fraud import schemas
from service.fraud.markers import PAID_MARKERS, markers_in
from service.fraud.schemas import (
    BlockedReferrer,
    ClickFlood,
    FastConversion,
    PaidTraffic,
    Rules,
    Velocity,
    rules_in_force,
)

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ACTIONS = st.sampled_from(["hold", "reject", "off"])


def _hits(facts, **settings):
    return [(h.rule, h.action) for h in fr.evaluate(Rules(**settings), facts)]


# --- hand-worked --------------------------------------------------------------


def test_fast_conversion_under_the_seconds():
    facts = fr.Facts(occurred_at=NOW, clicked_at=NOW - timedelta(seconds=2.5))
    assert fr.fast_conversion(facts, FastConversion()) == (
        "converted 2.5s after the click (under 3s)"
    )
    assert fr.fast_conversion(facts, FastConversion(seconds=2)) is None
    assert fr.fast_conversion(fr.Facts(occurred_at=NOW), FastConversion()) is None


def test_self_referral_same_email_same_domain_free_mail():
    def check(customer, partner):
        return fr.self_referral(
            fr.Facts(occurred_at=NOW, customer_email=customer, partner_email=partner)
        )

    assert "email is the partner's" in check(" Blog@Example.ORG", "blog@example.org")
    assert "domain example.org" in check("buyer@example.org", "blog@example.org")
    # A shared free mail provider says nothing about who the customer is.
    assert check("buyer@gmail.com", "blog@gmail.com") is None
    assert check("blog@gmail.com", "blog@gmail.com") is not None
    assert check("buyer@shop.example", "blog@example.org") is None
    assert check(None, "blog@example.org") is None


def test_disposable_email_from_the_maintained_list():
    assert fr.disposable_email(fr.Facts(NOW, customer_email="x@mailinator.com")) == (
        "disposable email domain mailinator.com"
    )
    assert fr.disposable_email(fr.Facts(NOW, customer_email="x@gmail.com")) is None
    assert fr.disposable_email(fr.Facts(NOW)) is None


def test_paid_traffic_only_the_markers_chosen():
    facts = fr.Facts(NOW, paid_markers=frozenset({"gclid", "yclid"}))
    assert fr.paid_traffic(facts, PaidTraffic(action="hold")) == (
        "the click came from a paid ad (gclid)"
    )
    assert fr.paid_traffic(facts, PaidTraffic(markers=["fbclid"])) is None
    assert fr.paid_traffic(fr.Facts(NOW, paid_markers=frozenset()), PaidTraffic()) is None


def test_click_flood_and_velocity_counts():
    assert fr.click_flood(fr.Facts(NOW, visitor_clicks_before=21), ClickFlood()) == (
        "the visitor made more than 20 clicks on the partner's links in the hour before"
    )
    assert fr.click_flood(fr.Facts(NOW, visitor_clicks_before=20), ClickFlood()) is None
    assert fr.velocity(fr.Facts(NOW, partner_conversions_before=100), Velocity()) == (
        "more than 100 conversions of the partner in the past hour, this one included"
    )
    assert fr.velocity(fr.Facts(NOW, partner_conversions_before=99), Velocity()) is None


def test_the_counts_read_stop_just_past_what_the_limits_decide():
    rules = Rules(
        click_flood=ClickFlood(max_per_hour=7), velocity=Velocity(action="hold", max_per_hour=3)
    )
    assert fr.counted(rules) == fr.Counted(visitor_clicks=8, partner_conversions=3)


@given(st.integers(1, 1000), st.integers(1, 1000), st.integers(0, 5000), st.integers(0, 5000))
def test_a_count_cut_where_counted_says_decides_as_the_whole_count(flood, fast, clicks, sales):
    # What the database reads (each count no further than `counted`) fires the same rules,
    # with the same details, as the whole counts would.
    rules = Rules(
        click_flood=ClickFlood(action="hold", max_per_hour=flood),
        velocity=Velocity(action="hold", max_per_hour=fast),
    )
    cut = fr.counted(rules)
    whole = fr.Facts(NOW, visitor_clicks_before=clicks, partner_conversions_before=sales)
    read = fr.Facts(
        NOW,
        visitor_clicks_before=min(clicks, cut.visitor_clicks),
        partner_conversions_before=min(sales, cut.partner_conversions),
    )
    assert fr.evaluate(rules, read) == fr.evaluate(rules, whole)


def test_blocked_referrer_host_and_subdomains():
    rule = BlockedReferrer(domains=["coupons.example"])
    for host in ("coupons.example", "www.coupons.example", "A.B.Coupons.Example."):
        assert fr.blocked_referrer(fr.Facts(NOW, referrer_host=host), rule) is not None
    for host in ("notcoupons.example", "coupons.example.net", None):
        assert fr.blocked_referrer(fr.Facts(NOW, referrer_host=host), rule) is None


def test_defaults_follow_the_table():
    rules = Rules()
    assert [(r.rule, r.action) for r in rules.as_list()] == [
        ("fast_conversion", "hold"),
        ("self_referral", "hold"),
        ("disposable_email", "hold"),
        ("paid_traffic", "off"),
        ("click_flood", "hold"),
        ("velocity", "off"),
        ("blocked_referrer", "off"),
    ]
    assert rules.fast_conversion.seconds == 3
    assert rules.click_flood.max_per_hour == 20 and rules.velocity.max_per_hour == 100
    assert rules.paid_traffic.markers == [
        "gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id",
    ]  # fmt: skip
    assert rules.blocked_referrer.domains == []
    assert fr.needs(rules) == {"click", "flood"}
    assert fr.needs(Rules(click_flood=ClickFlood(action="off"))) == set()


def test_a_rule_not_named_keeps_its_default():
    rules = rules_in_force([{"rule": "velocity", "action": "reject", "max_per_hour": 5}])
    assert rules.velocity == Velocity(action="reject", max_per_hour=5)
    assert rules.fast_conversion == FastConversion()


def test_settings_are_validated_once_per_stored_content():
    stored = [{"rule": "velocity", "action": "reject", "max_per_hour": 5}]
    first = rules_in_force(stored)
    # The same content, stored apart (another read of the program): the same settings.
    assert rules_in_force([{"max_per_hour": 5, "action": "reject", "rule": "velocity"}]) is first
    # Changed settings are not answered from the cache.
    changed = rules_in_force([{"rule": "velocity", "action": "reject", "max_per_hour": 6}])
    assert changed.velocity.max_per_hour == 6 and first.velocity.max_per_hour == 5


def test_stored_settings_orjson_refuses_still_get_a_key_of_their_own():
    big = [{"rule": "velocity", "action": "hold", "max_per_hour": 2**70}]
    bigger = [{"rule": "velocity", "action": "hold", "max_per_hour": 2**70 + 1}]
    assert schemas._cache_key(big) != schemas._cache_key(bigger)
    assert schemas._cache_key(big) == schemas._cache_key([dict(reversed(big[0].items()))])


def test_the_settings_cache_is_bounded():
    for n in range(1, 2 * schemas._RULES_CACHE_SIZE):
        rules_in_force([{"rule": "velocity", "action": "hold", "max_per_hour": n}])
        assert len(schemas._RULES_CACHE) <= schemas._RULES_CACHE_SIZE


@pytest.mark.parametrize(
    "bad",
    [
        {"rule": "nope"},
        {"rule": "velocity", "action": "flag"},
        {"rule": "velocity", "max_per_hour": 0},
        {"rule": "self_referral", "seconds": 3},
        {"rule": "paid_traffic", "markers": ["utm_source"]},
        {"rule": "blocked_referrer", "domains": ["Bad Host"]},
    ],
)
def test_unknown_rules_actions_and_parameters_are_refused(bad):
    with pytest.raises(ValidationError):
        rules_in_force([bad])


def test_markers_in_a_query():
    assert markers_in(b"sub1=x&gclid=abc&fbclid=&gclid=again") == ["gclid", "fbclid"]
    assert markers_in(b"sub1=gclid&xgclid=1") is None
    assert markers_in(b"") is None


def test_reject_wins_over_hold():
    facts = fr.Facts(
        occurred_at=NOW, clicked_at=NOW, customer_email="x@mailinator.com", partner_email="p@q.r"
    )
    hits = fr.evaluate(Rules(disposable_email={"action": "reject"}), facts)
    assert [(h.rule, h.action) for h in hits] == [
        ("fast_conversion", "hold"),
        ("disposable_email", "reject"),
    ]
    assert fr.status_for(hits) == "rejected"
    assert fr.review_reason(hits) == (
        "converted 0.0s after the click (under 3s); disposable email domain mailinator.com"
    )


# --- properties -----------------------------------------------------------------

emails = st.one_of(
    st.none(),
    st.builds(
        lambda user, domain: f"{user}@{domain}",
        st.sampled_from(["a", "b", "blog"]),
        st.sampled_from(["gmail.com", "mailinator.com", "example.org", "shop.example"]),
    ),
)
facts_strategy = st.builds(
    fr.Facts,
    occurred_at=st.just(NOW),
    clicked_at=st.one_of(
        st.none(), st.integers(-300_000, 10**7).map(lambda ms: NOW - timedelta(milliseconds=ms))
    ),
    customer_email=emails,
    partner_email=emails,
    paid_markers=st.one_of(st.none(), st.frozensets(st.sampled_from(PAID_MARKERS))),
    referrer_host=st.one_of(st.none(), st.sampled_from(["a.coupons.example", "blog.example"])),
    visitor_clicks_before=st.one_of(st.none(), st.integers(0, 200)),
    partner_conversions_before=st.one_of(st.none(), st.integers(0, 200)),
)
rules_strategy = st.builds(
    Rules,
    fast_conversion=st.builds(FastConversion, action=ACTIONS, seconds=st.integers(1, 60)),
    self_referral=st.builds(lambda a: {"action": a}, ACTIONS),
    disposable_email=st.builds(lambda a: {"action": a}, ACTIONS),
    paid_traffic=st.builds(PaidTraffic, action=ACTIONS),
    click_flood=st.builds(ClickFlood, action=ACTIONS, max_per_hour=st.integers(1, 100)),
    velocity=st.builds(Velocity, action=ACTIONS, max_per_hour=st.integers(1, 100)),
    blocked_referrer=st.builds(
        BlockedReferrer, action=ACTIONS, domains=st.just(["coupons.example"])
    ),
)


@given(rules_strategy, facts_strategy)
def test_a_rule_that_is_off_never_fires(rules, facts):
    off = {r.rule for r in rules.as_list() if r.action == "off"}
    hits = fr.evaluate(rules, facts)
    assert not off & {h.rule for h in hits}
    for hit in hits:
        assert hit.action == getattr(rules, hit.rule).action


@given(rules_strategy, facts_strategy)
def test_reject_dominates_hold(rules, facts):
    hits = fr.evaluate(rules, facts)
    actions = {h.action for h in hits}
    status = fr.status_for(hits)
    if "reject" in actions:
        assert status == "rejected"
    elif "hold" in actions:
        assert status == "review"
    else:
        assert status is None and hits == []


@given(st.integers(1, 86_400), st.integers(-5_000, 5_000))
def test_fast_conversion_is_exclusive_at_the_seconds(seconds, offset_ms):
    gap = timedelta(seconds=seconds, milliseconds=offset_ms)
    facts = fr.Facts(occurred_at=NOW, clicked_at=NOW - gap)
    fired = fr.fast_conversion(facts, FastConversion(seconds=seconds)) is not None
    assert fired == (gap < timedelta(seconds=seconds))


@given(st.integers(1, 1000), st.integers(0, 2000))
def test_counts_fire_only_past_the_limit(limit, n):
    flood = fr.click_flood(fr.Facts(NOW, visitor_clicks_before=n), ClickFlood(max_per_hour=limit))
    assert (flood is not None) == (n > limit)
    fast = fr.velocity(fr.Facts(NOW, partner_conversions_before=n), Velocity(max_per_hour=limit))
    assert (fast is not None) == (n + 1 > limit)


@given(st.lists(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), max_size=4))
def test_every_subdomain_of_a_blocked_domain_is_blocked(labels):
    host = ".".join([*labels, "coupons.example"])
    assert fr.host_blocked(host, ["coupons.example"]) == "coupons.example"
    # Glued to the domain without a dot is another domain.
    assert fr.host_blocked("x" + host, ["coupons.example"]) == (
        "coupons.example" if labels else None
    )
    assert fr.host_blocked(host + ".net", ["coupons.example"]) is None
