"""Partner B reads nothing of partner A's: every Query field and every Node type, found
by introspection. A new field or Node type that this walk does not cover fails it."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from exchange import ledger
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from graphql_schema import ids
from partners import clients, registry
from settlement import service as settlement_service
from tests.graphql.conftest import Caller, email, token_for
from tests.partners.test_registry import TERMS, unique_name

# One probe per Query field, run as partner B. Each names what B may legitimately see.
LONG_AGO = datetime(1700, 1, 1, tzinfo=UTC)

QUERY_PROBES: dict[str, str] = {
    "viewer": "{ viewer { kind scopes partner { id name contract { issuePrice } } } }",
    "member": """query($ref: String!) { member(memberRef: $ref) { id segments
        profile { purchasesHere spendHere lastPurchaseAt } wallet { balance
        offers { id title campaign { id name } }
        byPartner { points partner { id } }
        transactions(first: 50) { edges { node { id } } } } } }""",
    "wallet": "{ wallet { balance } }",
    "transactions": """{ transactions(first: 100) { edges { cursor node { id kind points
        reference partner { id name contract { issuePrice } } } } } }""",
    "partners": """{ partners(first: 100) { edges { node { id name
        contract { issuePrice redemptionPrice } } } } }""",
    "members": """{ members(first: 100) { edges { cursor node { memberRef
        member { id wallet { balance } } } } } }""",
    "settlementRuns": """{ settlementRuns(first: 100) { edges { node { id status
        netPositions { party amount } instructions { payer payee amount } } } } }""",
    "ledgerAccounts": "{ ledgerAccounts(first: 100) { edges { node { kind balance } } } }",
    "campaigns": """{ campaigns(first: 100) { edges { node { id name condition
        owner { id } funding { share partner { id } } } } } }""",
    "purchases": """{ purchases(first: 100) { edges { node { id amount reference
        awards { points rule campaign { id name } fundedBy { id } } } } } }""",
    "webhookEndpoints": """{ webhookEndpoints(first: 100) { edges { node { id url eventTypes
        deliveries(first: 20) { edges { node { id eventId eventType } } } } } } }""",
    "segments": """{ segments(first: 100) { edges { node { id name builtIn condition
        size } } } }""",
    "insights": """{ insights(from: "2026-01-01T00:00:00+00:00",
        to: "2099-01-01T00:00:00+00:00") { liabilityPoints issued redeemed currency
        retention { cohort members } crossShopping { category members } } }""",
    "campaignReport": '{ campaignReport(campaignId: "Q2FtcGFpZ246MQ") { reach uplift } }',
    "node": "(walked per Node type below)",
}


async def _partner(db: Database, api: httpx.AsyncClient, price: Decimal) -> Caller:
    terms = type(TERMS)(**{**TERMS.__dict__, "issue_price": price})
    async with db.transaction(SYSTEM) as conn:
        # Contracts in force since 1700: the walk also settles a past period.
        partner = await registry.add_partner(conn, name=unique_name(), terms=terms, now=LONG_AGO)
        created = await clients.create_client(
            conn,
            scopes=[
                "points:earn",
                "points:redeem",
                "points:reverse",
                "members:link",
                "members:read",
                "transactions:read",
                "wallet:read",
                "settlement:read",
                "campaigns:read",
                "campaigns:write",
                "webhooks:write",
                "insights:read",
                "offers:write",
            ],
            partner_id=partner.id,
        )
    assert created.client_secret
    token = await token_for(api, created.client_id, created.client_secret)
    return Caller(api, token, created.client_id, created.client_secret, partner.id)


async def _history(partner: Caller, ref: str, *, loyalty: bool = False) -> dict[str, str]:
    """Link a member, earn, redeem, hold (``loyalty``: and record a purchase, create a
    campaign); return the global ids created."""
    linked = await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { member { id } userErrors { code } } }",
        r=ref,
        e=email(),
    )
    earn = await partner.gql(
        "mutation($r: String!, $receipt: String) { earnPoints(input: {idempotencyKey: $r,"
        " memberRef: $r, points: 500, reference: $receipt}) { transaction { id } } }",
        r=ref,
        receipt=f"receipt-{ref}",
    )
    redeem = await partner.gql(
        "mutation($r: String!, $k2: String!) { redeemPoints(input: {idempotencyKey: $k2,"
        " memberRef: $r, points: 100}) { transaction { id } } }",
        r=ref,
        k2=f"r-{ref}",
    )
    hold = await partner.gql(
        "mutation($r: String!, $k3: String!) { holdPoints(input: {idempotencyKey: $k3,"
        " memberRef: $r, points: 50}) { hold { id } } }",
        r=ref,
        k3=f"h-{ref}",
    )
    ids_so_far = {
        "Member": linked["data"]["linkMember"]["member"]["id"],
        "Transaction": earn["data"]["earnPoints"]["transaction"]["id"],
        "Redemption": redeem["data"]["redeemPoints"]["transaction"]["id"],
        "Hold": hold["data"]["holdPoints"]["hold"]["id"],
    }
    if not loyalty:
        return ids_so_far
    purchase = await partner.gql(
        "mutation($k: String!, $r: String!, $ref: String) { recordPurchase(input: {"
        ' idempotencyKey: $k, memberRef: $r, amount: "12.50", currency: "USD", reference: $ref})'
        " { purchase { id } userErrors { code message } } }",
        k=f"p-{ref}",
        r=ref,
        ref=f"purchase-{ref}",
    )
    campaign = await partner.gql(
        "mutation($n: String!) { createCampaign(input: {name: $n,"
        ' startsAt: "2026-01-01T00:00:00+00:00", effect: {kind: FIXED, value: "10"}})'
        " { campaign { id } userErrors { code message } } }",
        n=f"campaign-{ref}",
    )
    hook = await partner.gql(
        'mutation($u: String!) { createWebhookEndpoint(input: {url: $u, eventTypes: ["*"]})'
        " { endpoint { id } userErrors { code message } } }",
        u=f"https://93.184.216.34/hook-{ref}",
    )
    endpoint_id = hook["data"]["createWebhookEndpoint"]["endpoint"]["id"]
    targeted = await partner.gql(
        "mutation($n: String!) { createCampaign(input: {name: $n,"
        ' startsAt: "2026-01-01T00:00:00+00:00", effect: {kind: FIXED, value: "10"},'
        ' target: {segment: "ACTIVE", controlShare: "0", offerTitle: "offer"}})'
        " { campaign { id } userErrors { code message } } }",
        n=f"targeted-{ref}",
    )
    assert targeted["data"]["createCampaign"]["userErrors"] == []
    offers = await partner.gql(
        "query($r: String!) { member(memberRef: $r) { wallet { offers { id } } } }", r=ref
    )
    segment = await partner.gql(
        "mutation($n: String!, $c: String!) { createSegment(input: {name: $n, condition: $c})"
        " { segment { id } userErrors { code message } } }",
        n=f"SEG_{ref.upper().replace('-', '_')}",
        c=f'profile.purchases > 0 && "{ref}" != ""',
    )
    await partner.gql(
        "mutation($id: ID!) { pingWebhookEndpoint(input: {endpointId: $id}) { endpoint { id } } }",
        id=endpoint_id,
    )
    deliveries = await partner.gql(
        "query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { deliveries(first: 1)"
        " { edges { node { id } } } } } }",
        id=endpoint_id,
    )
    return {
        **ids_so_far,
        "Purchase": purchase["data"]["recordPurchase"]["purchase"]["id"],
        "Campaign": campaign["data"]["createCampaign"]["campaign"]["id"],
        "WebhookEndpoint": endpoint_id,
        "Segment": segment["data"]["createSegment"]["segment"]["id"],
        "Offer": offers["data"]["member"]["wallet"]["offers"][0]["id"],
        "WebhookDelivery": deliveries["data"]["node"]["deliveries"]["edges"][0]["node"]["id"],
    }


async def _settled_past_period(db: Database, a: Caller, b: Caller) -> int:
    """A finalized run in a past year where A's points were redeemed at B."""
    start = datetime(1701 + secrets.randbelow(90), 3, 1, tzinfo=UTC)
    assert a.partner_id is not None
    assert b.partner_id is not None
    async with db.transaction(SYSTEM) as conn:
        member = await ledger.open_member(conn)
        await ledger.earn(
            conn,
            client_id="walk",
            partner_id=a.partner_id,
            request=ledger.EarnRequest(
                idempotency_key=f"w-{start.year}-1", member_id=member, points=100
            ),
            now=start + timedelta(days=1),
        )
        await ledger.redeem(
            conn,
            client_id="walk",
            partner_id=b.partner_id,
            request=ledger.RedeemRequest(
                idempotency_key=f"w-{start.year}-2", member_id=member, points=60
            ),
            now=start + timedelta(days=2),
        )
        run = await settlement_service.run_settlement(
            conn, start=start, end=start + timedelta(days=30), now=utc_now()
        )
        await settlement_service.finalize(conn, run_id=run.id, now=utc_now())
    return run.id


async def _introspect(caller: Caller) -> tuple[set[str], set[str]]:
    result = await caller.gql(
        '{ __schema { queryType { fields { name } } } __type(name: "Node")'
        " { possibleTypes { name } } }"
    )
    data = result["data"]
    fields = {f["name"] for f in data["__schema"]["queryType"]["fields"]}
    node_types = {t["name"] for t in data["__type"]["possibleTypes"]}
    return fields, node_types


async def test_partner_b_reads_nothing_of_partner_a_through_any_field(
    db: Database, api: httpx.AsyncClient
) -> None:
    a_price = Decimal(f"0.0{secrets.randbelow(10**6):06d}1")
    partner_a = await _partner(db, api, a_price)
    partner_b = await _partner(db, api, Decimal("0.02"))
    a_ref, b_ref = f"a-{secrets.token_hex(6)}", f"b-{secrets.token_hex(6)}"
    a_ids = await _history(partner_a, a_ref, loyalty=True)
    await _history(partner_b, b_ref, loyalty=True)
    run_id = await _settled_past_period(db, partner_a, partner_b)
    # A's party key may appear where A is B's counterparty (an instruction "A pays B");
    # A's own net position, customers, references and prices may not.
    a_secrets = [
        *a_ids.values(),
        a_ref,
        f"receipt-{a_ref}",
        f"purchase-{a_ref}",
        f"campaign-{a_ref}",
        f"hook-{a_ref}",
        str(a_price),
    ]
    assert partner_a.partner_id is not None
    a_partner_id = ids.encode("Partner", partner_a.partner_id)

    fields, node_types = await _introspect(partner_b)
    assert fields == set(QUERY_PROBES), (
        f"the isolation walk does not cover {fields - set(QUERY_PROBES)}: add a probe"
    )

    seen: dict[str, Any] = {}
    for field, probe in QUERY_PROBES.items():
        if field == "node":
            continue
        variables = {"ref": a_ref} if "$ref" in probe else {}
        seen[field] = await partner_b.gql(probe, **variables)
    assert seen["member"]["data"]["member"] is None
    own = f"partner:{partner_b.partner_id}"
    for edge in seen["settlementRuns"]["data"]["settlementRuns"]["edges"]:
        assert {n["party"] for n in edge["node"]["netPositions"]} <= {own}
        for instruction in edge["node"]["instructions"]:
            assert own in (instruction["payer"], instruction["payee"])

    walked = {"Partner"}
    node_probe = (
        "query($id: ID!) { node(id: $id) { id ... on Partner { contract { issuePrice } } } }"
    )
    for type_name, global_id in a_ids.items():
        kind = "Transaction" if type_name == "Redemption" else type_name
        result = await partner_b.gql(node_probe, id=global_id)
        assert result["data"]["node"] is None, (kind, result)
        walked.add(kind)
    run_node = await partner_b.gql(
        "query($id: ID!) { node(id: $id) { id ... on SettlementRun { netPositions { party }"
        " instructions { payer payee } } } }",
        id=ids.encode("SettlementRun", run_id),
    )
    seen["settlementRunNode"] = run_node
    assert run_node["data"]["node"]["netPositions"] == [
        {"party": f"partner:{partner_b.partner_id}"}
    ]
    walked.add("SettlementRun")
    a_partner_node = await partner_b.gql(node_probe, id=a_partner_id)
    assert a_partner_node["data"]["node"]["contract"] is None  # the name is public, terms not
    assert node_types <= walked, f"no node(id:) probe for {node_types - walked}"

    text = json.dumps(seen)
    leaked = [value for value in a_secrets if value in text]
    assert not leaked, f"partner B saw partner A's {leaked}"


async def test_a_member_token_reads_only_its_own_wallet(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await _partner(db, api, Decimal("0.01"))
    mine, other = f"m-{secrets.token_hex(4)}", f"o-{secrets.token_hex(4)}"
    await _history(partner, mine)
    others = await _history(partner, other)
    member = await partner.member_token(mine)

    wallet = await member.gql(
        "{ wallet { balance transactions(first: 50) { edges { node { id } } } } }"
    )
    node = await member.gql("query($id: ID!) { node(id: $id) { id } }", id=others["Member"])
    foreign = await member.gql("query($id: ID!) { node(id: $id) { id } }", id=others["Transaction"])

    assert wallet["data"]["wallet"]["balance"] == "400"  # 500 - 100 redeemed (50 held stays)
    own_ids = {e["node"]["id"] for e in wallet["data"]["wallet"]["transactions"]["edges"]}
    assert others["Transaction"] not in own_ids
    assert node["data"]["node"] is None
    assert foreign["data"]["node"] is None


# Every mutation whose input names a memberRef, run by partner B with A's ref: B's refs are
# its own, so none of them reaches A's member (MEMBER_NOT_LINKED). A new mutation with a
# memberRef that this walk does not cover fails it.
MEMBER_REF_PROBES: dict[str, str] = {
    "unlinkMember": """mutation($ref: String!) { unlinkMember(input: {memberRef: $ref})
        { memberRef userErrors { code } } }""",
    "updateMemberContact": """mutation($ref: String!, $e: String) { updateMemberContact(input:
        {memberRef: $ref, email: $e}) { member { id } userErrors { code } } }""",
    "earnPoints": """mutation($ref: String!) { earnPoints(input: {idempotencyKey: $ref,
        memberRef: $ref, points: 5}) { transaction { id } userErrors { code } } }""",
    "redeemPoints": """mutation($ref: String!) { redeemPoints(input: {idempotencyKey: $ref,
        memberRef: $ref, points: 5}) { transaction { id } userErrors { code } } }""",
    "holdPoints": """mutation($ref: String!) { holdPoints(input: {idempotencyKey: $ref,
        memberRef: $ref, points: 5}) { hold { id } userErrors { code } } }""",
    "recordPurchase": """mutation($ref: String!) { recordPurchase(input: {idempotencyKey: $ref,
        memberRef: $ref, amount: "10.00", currency: "USD"}) { purchase { id }
        userErrors { code } } }""",
    "previewPurchase": """mutation($ref: String!) { previewPurchase(input: {memberRef: $ref,
        amount: "10.00", currency: "USD"}) { points userErrors { code } } }""",
    "activateOffer": """mutation($ref: String!) { activateOffer(input: {offerId: "T2ZmZXI6MQ",
        memberRef: $ref}) { offer { id } userErrors { code } } }""",
    # Last: B linking the same string makes it a ref of B's own.
    "linkMember": """mutation($ref: String!, $e: String) { linkMember(input: {memberRef: $ref,
        email: $e}) { member { id } userErrors { code } } }""",
}


async def _member_ref_mutations(caller: Caller) -> set[str]:
    """The Mutation fields whose input object has a memberRef field."""
    result = await caller.gql(
        "{ __schema { mutationType { fields { name args { type { ofType {"
        " inputFields { name } } } } } } } }"
    )
    found = set()
    for field in result["data"]["__schema"]["mutationType"]["fields"]:
        for argument in field["args"]:
            inner = argument["type"]["ofType"] or {}
            if "memberRef" in {f["name"] for f in inner.get("inputFields") or []}:
                found.add(field["name"])
    return found


async def test_partner_b_reaches_none_of_partner_a_members_by_its_ref(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner_a = await _partner(db, api, Decimal("0.01"))
    partner_b = await _partner(db, api, Decimal("0.01"))
    a_ref = f"a-{secrets.token_hex(6)}"
    a_ids = await _history(partner_a, a_ref)
    assert await _member_ref_mutations(partner_b) == set(MEMBER_REF_PROBES), (
        "add a probe for every mutation that takes a memberRef"
    )
    b_email = email()

    seen = {}
    for name, probe in MEMBER_REF_PROBES.items():
        variables = {"ref": a_ref, "e": b_email} if "$e" in probe else {"ref": a_ref}
        seen[name] = await partner_b.gql(probe, **variables)
    a_member = await partner_a.gql(
        "query($ref: String!) { member(memberRef: $ref) { id wallet { balance held } } }",
        ref=a_ref,
    )
    b_own = seen.pop("linkMember")["data"]["linkMember"]

    for name, result in seen.items():
        assert [e["code"] for e in result["data"][name]["userErrors"]] == ["MEMBER_NOT_LINKED"], (
            name,
            result,
        )
    # B's link of the same string is B's own ref, to a member of B's own e-mail.
    assert b_own["userErrors"] == []
    assert b_own["member"]["id"] != a_ids["Member"]
    assert a_member["data"]["member"] == {
        "id": a_ids["Member"],
        "wallet": {"balance": "400", "held": "50"},
    }
    assert a_ids["Member"] not in json.dumps(seen)
