"""Worked examples of the built-in segments, judged at the clock's NOW (2026-06-30 12:00
UTC) on purchases with the dates written here; custom segments (CEL over the profile, its
errors as userErrors); segments in campaign conditions; segment sizes; a segment by its
global ID (``node(id:)``), seen as ``segments`` lists it."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from exchange.kit.db import Database
from tests.graphql.conftest import Caller, email, new_partner
from tests.insights.conftest import SINCE, bought, insights_operator, profile_of, refresh
from tests.loyalty.conftest import awards, campaign, gid, link, partner_with, record

CREATE_SEGMENT = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id name builtIn condition size } userErrors { code field message } } }"""
SEGMENTS = "{ segments(first: 100) { edges { node { name builtIn size } } } }"

#: Each member's purchases (the time of day is 10:00 UTC) and the segments it is in.
EXAMPLES: dict[str, tuple[list[str], list[str]]] = {
    # first purchase 20 days ago: NEW; a purchase within 90 days: ACTIVE
    "new": (["2026-06-10"], ["NEW", "ACTIVE"]),
    # first purchase 41 days ago: no longer NEW, still ACTIVE
    "settled": (["2026-05-20"], ["ACTIVE"]),
    # two purchases, the first 29 days ago: NEW, ACTIVE, REPEAT
    "repeat": (["2026-06-01", "2026-06-20"], ["NEW", "ACTIVE", "REPEAT"]),
    # last purchase 102 days ago: not ACTIVE, not yet LAPSED
    "quiet": (["2026-03-20"], []),
    # every 10 days, then nothing for 160 days (> 2 x 10, and >= 30): AT_RISK
    "at_risk": (["2026-01-01", "2026-01-11", "2026-01-21"], ["REPEAT", "AT_RISK"]),
    # every 91 days, last 30 days ago: not more than 2 x 91 days, so not AT_RISK
    "slow": (["2026-03-01", "2026-05-31"], ["ACTIVE", "REPEAT"]),
    # 35 days apart, last 46 days ago: more than once the interval, not twice: not AT_RISK
    "between": (["2026-04-10", "2026-05-15"], ["ACTIVE", "REPEAT"]),
    # 12 days apart, last 24 days 2 hours ago: more than 2 x 12 days but under 30: not
    # AT_RISK
    "recent": (["2026-05-25", "2026-06-06"], ["ACTIVE", "REPEAT"]),
    # nothing for 181 days: LAPSED
    "lapsed": (["2025-12-31"], ["LAPSED"]),
}


async def _members(partner: Caller) -> dict[str, str]:
    refs = {}
    for name, (days, _) in EXAMPLES.items():
        refs[name] = ref = await link(partner)
        for day in days:
            await bought(partner, ref, "10.00", f"{day}T10:00:00+00:00")
    return refs


async def test_each_built_in_segment_by_worked_example(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = await _members(cafe)

    seen = {name: (await profile_of(cafe, ref))["segments"] for name, ref in refs.items()}

    assert seen == {name: expected for name, (_, expected) in EXAMPLES.items()}
    sizes = await cafe.gql(SEGMENTS)
    built_in = {
        e["node"]["name"]: e["node"]["size"]
        for e in sizes["data"]["segments"]["edges"]
        if e["node"]["builtIn"]
    }
    assert built_in == {
        "NEW": 2, "ACTIVE": 6, "REPEAT": 5, "HIGH_VALUE": 0, "AT_RISK": 1, "LAPSED": 1,
    }  # fmt: skip


async def test_high_value_is_the_top_monetary_quintile_after_a_refresh(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = [await link(cafe) for _ in range(5)]
    for spend, ref in zip((10, 20, 30, 40, 50), refs, strict=True):
        await bought(cafe, ref, f"{spend}.00", "2026-06-01T10:00:00+00:00")
    assert "HIGH_VALUE" not in (await profile_of(cafe, refs[-1]))["segments"]

    await refresh(db)

    # five members: spends 10..50; the one who spent 50 is the top fifth
    assert [("HIGH_VALUE" in (await profile_of(cafe, r))["segments"]) for r in refs] == [
        False, False, False, False, True,
    ]  # fmt: skip


async def test_a_custom_segment_is_cel_over_the_profile(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    refs = await _members(cafe)

    created = await cafe.gql(
        CREATE_SEGMENT,
        input={
            "name": "WINTER_REGULARS",
            "condition": 'profile.purchases >= 3 && "AT_RISK" in profile.segments'
            " && profile.spend_minor == 3000 && profile.days_since_last > 150",
        },
    )

    payload = created["data"]["createSegment"]
    assert payload["userErrors"] == []
    assert payload["segment"]["size"] == 1  # the at_risk member: 3 x 10.00, 160 days ago
    assert payload["segment"]["builtIn"] is False
    assert (await profile_of(cafe, refs["at_risk"]))["segments"] == [
        "REPEAT", "AT_RISK", "WINTER_REGULARS",
    ]  # fmt: skip
    assert (await profile_of(cafe, refs["slow"]))["segments"] == ["ACTIVE", "REPEAT"]
    listed = await cafe.gql(SEGMENTS)
    names = [e["node"]["name"] for e in listed["data"]["segments"]["edges"]]
    assert names[-1] == "WINTER_REGULARS"
    assert names[:6] == [
        "NEW",
        "ACTIVE",
        "REPEAT",
        "HIGH_VALUE",
        "AT_RISK",
        "LAPSED",
    ]


async def _refused(partner: Caller, **given: Any) -> dict[str, Any]:
    result = await partner.gql(CREATE_SEGMENT, input={"name": "SOME", **given})
    payload: dict[str, Any] = result["data"]["createSegment"]
    assert payload["segment"] is None
    [error] = payload["userErrors"]
    return error


async def test_a_custom_segment_with_a_bad_condition_or_name_is_refused(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)

    syntax = await _refused(cafe, condition="profile.purchases >")
    unknown = await _refused(cafe, condition="purchase.amount_minor > 10")
    field = await _refused(cafe, condition="profile.tier == 'Gold'")
    built_in = await _refused(cafe, name="AT_RISK", condition="true")
    lower = await _refused(cafe, name="regulars", condition="true")

    for error in (syntax, unknown, field):
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["input", "condition"])
    assert "not valid CEL" in syntax["message"]
    assert "column" in syntax["message"]
    assert "unknown name 'purchase'" in unknown["message"]
    assert "unknown name 'profile.tier'" in field["message"]
    for error in (built_in, lower):
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["input", "name"])
    listed = await cafe.gql(SEGMENTS)
    assert all(e["node"]["builtIn"] for e in listed["data"]["segments"]["edges"])


async def test_segments_are_a_variable_of_campaign_conditions(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    at_risk, active = await link(cafe), await link(cafe)
    for day in ("2026-01-01", "2026-01-11", "2026-01-21"):
        await bought(cafe, at_risk, "10.00", f"{day}T10:00:00+00:00")
    await bought(cafe, active, "10.00", "2026-06-20T10:00:00+00:00")
    await campaign(cafe, {"kind": "FIXED", "value": "50"}, condition='"AT_RISK" in member.segments')

    back = await record(cafe, at_risk, "10.00")
    regular = await record(cafe, active, "10.00")

    assert awards(back) == [("BASE", 10), ("CAMPAIGN", 50)]
    assert awards(regular) == [("BASE", 10)]


SEGMENT_FIELDS = "id name builtIn condition size"
LISTED = "{ segments(first: 100) { edges { node { " + SEGMENT_FIELDS + " } } } }"
NODE = "query($id: ID!) { node(id: $id) { ... on Segment { " + SEGMENT_FIELDS + " } } }"


async def _listed(partner: Caller) -> dict[str, dict[str, Any]]:
    result = await partner.gql(LISTED)
    assert "errors" not in result, result
    return {e["node"]["name"]: e["node"] for e in result["data"]["segments"]["edges"]}


async def _regulars(partner: Caller) -> dict[str, Any]:
    """Three members (two bought twice, one once) and a custom segment of the twice."""
    for days in (["2026-05-01", "2026-06-01"], ["2026-05-10", "2026-06-10"], ["2026-06-15"]):
        ref = await link(partner)
        for day in days:
            await bought(partner, ref, "10.00", f"{day}T10:00:00+00:00")
    created = await partner.gql(
        CREATE_SEGMENT, input={"name": "REGULARS", "condition": "profile.purchases >= 2"}
    )
    assert created["data"]["createSegment"]["userErrors"] == []
    segment: dict[str, Any] = created["data"]["createSegment"]["segment"]
    return segment


async def test_node_gives_a_segment_as_segments_lists_it(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    regulars = await _regulars(cafe)
    listed = await _listed(cafe)

    own = await cafe.gql(NODE, id=regulars["id"])
    repeat = await cafe.gql(NODE, id=listed["REPEAT"]["id"])

    assert "errors" not in own, own
    assert "errors" not in repeat, repeat
    assert own["data"]["node"] == listed["REGULARS"]
    assert own["data"]["node"] == {**regulars, "size": 2}  # the two who bought twice
    assert repeat["data"]["node"] == listed["REPEAT"]
    assert repeat["data"]["node"]["size"] == 2
    assert repeat["data"]["node"]["id"] == gid("Segment", 3)  # built-in ids are 1 to 6


async def test_node_of_another_partners_segment_is_null_like_one_that_never_existed(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe, cinema = await partner_with(db, api, since=SINCE), await partner_with(db, api)
    regulars = await _regulars(cafe)

    foreign = await cinema.gql(NODE, id=regulars["id"])
    never = [await cinema.gql(NODE, id=gid("Segment", n)) for n in (7, 99, 2**62)]
    repeat = await cinema.gql(NODE, id=gid("Segment", 3))

    answers = [{k: v for k, v in r.items() if k != "extensions"} for r in (foreign, *never)]
    # the same answer for all four: no sign that the cafe's segment exists
    assert answers == [{"data": {"node": None}}] * 4
    # a built-in segment counts the caller's own members: the cinema has none
    assert repeat["data"]["node"] == {**(await _listed(cinema))["REPEAT"], "size": 0}


async def test_node_of_a_segment_needs_insights_read_as_segments_does(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe = await partner_with(db, api, since=SINCE)
    regulars = await _regulars(cafe)
    scopes = "members:link members:read points:earn campaigns:read"
    without = await new_partner(db, api, scopes=scopes)
    member = await cafe.member_token(await link(cafe))

    refused = {
        caller: (await who.gql(NODE, id=id_), await who.gql(LISTED))
        for caller, who, id_ in [
            ("partner without insights:read", without, gid("Segment", 3)),
            ("member", member, regulars["id"]),
        ]
    }

    for caller, (node, listing) in refused.items():
        assert node["data"] == {"node": None}, caller
        assert [e["extensions"]["code"] for e in node["errors"]] == ["FORBIDDEN"], caller
        assert [e["extensions"]["code"] for e in listing["errors"]] == ["FORBIDDEN"], caller
    assert "insights:read" in refused["partner without insights:read"][0]["errors"][0]["message"]


async def _linked(mail: str, *partners: Caller) -> str:
    """One member (one e-mail) linked by each partner under one ref."""
    ref = f"m-{secrets.token_hex(5)}"
    for partner in partners:
        linked = await partner.gql(
            "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
            " { userErrors { code } } }",
            r=ref,
            e=mail,
        )
        assert linked["data"]["linkMember"]["userErrors"] == []
    return ref


async def test_an_operators_custom_segment_counts_the_coalitions_members_a_partners_its_own(
    db: Database, api: httpx.AsyncClient
) -> None:
    cafe, cinema = (
        await partner_with(db, api, since=SINCE),
        await partner_with(db, api, since=SINCE),
    )
    operator = await insights_operator(db, api)
    ann = await _linked(email(), cafe, cinema)
    bob, dan = await _linked(email(), cafe), await _linked(email(), cafe)
    cid = await _linked(email(), cinema)
    await bought(cafe, ann, "31.17", "2026-06-01T10:00:00+00:00")
    await bought(cinema, ann, "44.50", "2026-06-05T10:00:00+00:00")  # Ann: 2, 75.67 in all
    await bought(cafe, bob, "75.67", "2026-06-02T10:00:00+00:00")  # Bob: 1, 75.67
    await bought(cinema, cid, "40.00", "2026-06-03T10:00:00+00:00")
    await bought(cinema, cid, "35.67", "2026-06-04T10:00:00+00:00")  # Cid: 2, 75.67
    await bought(cafe, dan, "10.00", "2026-06-06T10:00:00+00:00")  # Dan: 1, 10.00
    spent = "profile.spend_minor == 7567"
    twice = spent + " && profile.purchases == 2"
    suffix = secrets.token_hex(3).upper()

    created = {
        (who, name): (await caller.gql(CREATE_SEGMENT, input={
            "name": f"{name}_{suffix}", "condition": condition,
        }))["data"]["createSegment"]["segment"]
        for who, caller in (("operator", operator), ("cafe", cafe), ("cinema", cinema))
        for name, condition in (("SPENT", spent), ("TWICE", twice))
    }  # fmt: skip

    sizes = {key: segment["size"] for key, segment in created.items()}
    assert sizes == {
        # the coalition's profiles: Ann (31.17 + 44.50 in two), Bob and Cid
        ("operator", "SPENT"): 3, ("operator", "TWICE"): 2,  # Ann, Cid
        # each partner its linked members, on its own purchases: Ann spent 31.17 at the
        # cafe and 44.50 at the cinema, so neither counts her
        ("cafe", "SPENT"): 1, ("cafe", "TWICE"): 0,  # Bob
        ("cinema", "SPENT"): 1, ("cinema", "TWICE"): 1,  # Cid
    }  # fmt: skip
    listed = await _listed(operator)
    by_node = await operator.gql(NODE, id=created[("operator", "SPENT")]["id"])
    cafes = await operator.gql(NODE, id=created[("cafe", "SPENT")]["id"])
    assert listed[f"SPENT_{suffix}"]["size"] == 3
    assert listed[f"TWICE_{suffix}"]["size"] == 2
    assert by_node["data"]["node"] == listed[f"SPENT_{suffix}"]
    assert cafes["data"]["node"] is None  # the operator's segments are its own, as listed
