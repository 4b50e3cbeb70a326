"""Every request's database work runs under its caller's row-level-security scope: each
transaction an API call opens starts by binding the caller (SET ROLE exchange_api and the
principal), whatever the field. The walk covers every Query and Mutation field, found by
introspection: a new field without a probe here fails it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from partners import clients
from tests.graphql.conftest import Caller, email, new_partner, token_for

BINDING = "SELECT set_config('role', 'exchange_api', true)"

# field -> (who calls it, document); "$ref" is a member the partner linked.
PROBES: dict[str, tuple[str, str]] = {
    "viewer": ("partner", "{ viewer { kind partner { id contract { issuePrice } } } }"),
    "member": ("partner", 'query($ref: String!) { member(memberRef: $ref) { id wallet {'
               " balance expiring { points } transactions(first: 5) { edges { node { id"
               " partner { name } } } } } } }"),
    "wallet": ("member", "{ wallet { balance byPartner { points partner { name } } } }"),
    "transactions": ("partner", "{ transactions(first: 5) { edges { node { id } } } }"),
    "partners": ("member", "{ partners(first: 5) { edges { node { id name } } } }"),
    "members": ("partner", "{ members(first: 5) { edges { node { memberRef } } } }"),
    "settlementRuns": ("operator", "{ settlementRuns(first: 5) { edges { node { id } } } }"),
    "ledgerAccounts": ("operator", "{ ledgerAccounts(first: 5) { edges { node { kind } } } }"),
    "node": ("partner", 'query($node: ID!) { node(id: $node) { id } }'),
    "linkMember": ("partner", 'mutation($e: String) { linkMember(input: {memberRef: "other",'
                   " email: $e}) { userErrors { code } } }"),
    "earnPoints": ("partner", 'mutation($ref: String!) { earnPoints(input: {idempotencyKey:'
                   ' "e1", memberRef: $ref, points: 100}) { transaction { id } wallet {'
                   " balance } userErrors { code } } }"),
    "earnPointsBatch": ("partner", "mutation($ref: String!) { earnPointsBatch(input: {items:"
                        ' [{idempotencyKey: "b1", memberRef: $ref, points: 5}]})'
                        " { results { transaction { id } } } }"),
    "redeemPoints": ("partner", 'mutation($ref: String!) { redeemPoints(input: {idempotencyKey:'
                     ' "r1", memberRef: $ref, points: 10}) { transaction { id } } }'),
    "holdPoints": ("partner", 'mutation($ref: String!) { holdPoints(input: {idempotencyKey:'
                   ' "h1", memberRef: $ref, points: 10}) { hold { id } } }'),
    "captureHold": ("partner", 'mutation { captureHold(input: {idempotencyKey: "c1",'
                    ' holdId: "SG9sZDox"}) { userErrors { code } } }'),
    "releaseHold": ("partner", 'mutation { releaseHold(input: {holdId: "SG9sZDox"})'
                    " { userErrors { code } } }"),
    "reverseTransaction": ("partner", 'mutation { reverseTransaction(input: {idempotencyKey:'
                           ' "v1", transactionId: "VHJhbnNhY3Rpb246MQ"})'
                           " { userErrors { code } } }"),
    "transferPoints": ("member", 'mutation { transferPoints(input: {idempotencyKey: "t1",'
                       ' points: 1, toEmail: "nobody@example.com"})'
                       " { userErrors { code } } }"),
    "runSettlement": ("operator", 'mutation { runSettlement(input: {from:'
                      ' "1001-01-01T00:00:00+00:00", to: "1001-02-01T00:00:00+00:00"})'
                      " { run { id } userErrors { code } } }"),
    "finalizeSettlement": ("operator", 'mutation { finalizeSettlement(input: {runId:'
                           ' "U2V0dGxlbWVudFJ1bjox"}) { userErrors { code } } }'),
    "campaigns": ("partner", "{ campaigns(first: 5) { edges { node { id } } } }"),
    "purchases": ("partner", "{ purchases(first: 5) { edges { node { id awards { rule } } } } }"),
    "recordPurchase": ("partner", 'mutation($ref: String!) { recordPurchase(input: {'
                       'idempotencyKey: "p1", memberRef: $ref, amount: "10.00", currency: "USD"})'
                       " { purchase { id } userErrors { code } } }"),
    "previewPurchase": ("partner", 'mutation($ref: String!) { previewPurchase(input: {'
                        'memberRef: $ref, amount: "10.00", currency: "USD"})'
                        " { points userErrors { code } } }"),
    "refundPurchase": ("partner", 'mutation { refundPurchase(input: {idempotencyKey: "f1",'
                       ' purchaseId: "UHVyY2hhc2U6MQ"}) { userErrors { code } } }'),
    "createCampaign": ("partner", 'mutation { createCampaign(input: {name: "c",'
                       ' startsAt: "2026-01-01T00:00:00+00:00", effect: {kind: FIXED,'
                       ' value: "5"}}) { campaign { id } userErrors { code } } }'),
    "activateCampaign": ("partner", 'mutation { activateCampaign(input: {campaignId:'
                         ' "Q2FtcGFpZ246MQ"}) { userErrors { code } } }'),
    "pauseCampaign": ("partner", 'mutation { pauseCampaign(input: {campaignId:'
                      ' "Q2FtcGFpZ246MQ"}) { userErrors { code } } }'),
    "endCampaign": ("partner", 'mutation { endCampaign(input: {campaignId:'
                    ' "Q2FtcGFpZ246MQ"}) { userErrors { code } } }'),
    "acceptCampaignFunding": ("partner", 'mutation { acceptCampaignFunding(input: {campaignId:'
                              ' "Q2FtcGFpZ246MQ"}) { userErrors { code } } }'),
    "declineCampaignFunding": ("partner", 'mutation { declineCampaignFunding(input: {campaignId:'
                               ' "Q2FtcGFpZ246MQ"}) { userErrors { code } } }'),
    "simulateCampaign": ("partner", 'mutation { simulateCampaign(input: {campaignId:'
                         ' "Q2FtcGFpZ246MQ", from: "2026-01-01T00:00:00+00:00",'
                         ' to: "2026-02-01T00:00:00+00:00"}) { userErrors { code } } }'),
    "changeContract": ("operator", 'mutation { changeContract(input: {partnerId: "UGFydG5lcjox",'
                       ' effectiveFrom: "2030-01-01T00:00:00+00:00", earnRate: "2"})'
                       " { userErrors { code } } }"),
    "webhookEndpoints": ("partner", "{ webhookEndpoints(first: 5) { edges { node { id"
                         " deliveries(first: 2) { edges { node { id } } } } } } }"),
    "createWebhookEndpoint": ("partner", 'mutation { createWebhookEndpoint(input: {url:'
                              ' "https://93.184.216.34/rs", eventTypes: ["*"]})'
                              " { endpoint { id } userErrors { code } } }"),
    "updateWebhookEndpoint": ("partner", 'mutation { updateWebhookEndpoint(input: {endpointId:'
                              ' "V2ViaG9va0VuZHBvaW50OjE", enabled: true})'
                              " { userErrors { code } } }"),
    "rotateWebhookSecret": ("partner", 'mutation { rotateWebhookSecret(input: {endpointId:'
                            ' "V2ViaG9va0VuZHBvaW50OjE"}) { userErrors { code } } }'),
    "deleteWebhookEndpoint": ("partner", 'mutation { deleteWebhookEndpoint(input: {endpointId:'
                              ' "V2ViaG9va0VuZHBvaW50OjE"}) { userErrors { code } } }'),
    "pingWebhookEndpoint": ("partner", 'mutation { pingWebhookEndpoint(input: {endpointId:'
                            ' "V2ViaG9va0VuZHBvaW50OjE"}) { userErrors { code } } }'),
    "redeliverWebhook": ("partner", 'mutation { redeliverWebhook(input: {deliveryId:'
                         ' "V2ViaG9va0RlbGl2ZXJ5OjE"}) { userErrors { code } } }'),
    "updateMemberContact": ("partner", 'mutation($ref: String!, $e: String) {'
                            " updateMemberContact(input: {memberRef: $ref, email: $e})"
                            " { member { id wallet { balance } } userErrors { code } } }"),
    "unlinkMember": ("partner", 'mutation { unlinkMember(input: {memberRef: "other"})'
                     " { memberRef userErrors { code } } }"),
    "insights": ("partner", '{ insights(from: "2026-01-01T00:00:00+00:00", to:'
                 ' "2026-02-01T00:00:00+00:00") { issued retention { cohort }'
                 " crossShopping { category } } }"),
    "campaignReport": ("partner", '{ campaignReport(campaignId: "Q2FtcGFpZ246MQ")'
                       " { reach uplift } }"),
    "activateOffer": ("member", 'mutation { activateOffer(input: {offerId: "T2ZmZXI6MQ"})'
                      " { userErrors { code } } }"),
    "segments": ("partner", "{ segments(first: 10) { edges { node { id name size } } } }"),
    "setMemberConsent": ("operator", 'mutation { setMemberConsent(input: {consentCrossPartner:'
                         ' true, memberId: "TWVtYmVyOjE"}) { userErrors { code } } }'),
    "createSegment": ("partner", 'mutation { createSegment(input: {name: "RS", condition:'
                      ' "profile.purchases > 1"}) { segment { id } userErrors { code } } }'),
}  # fmt: skip


@contextmanager
def first_statements(database: Database) -> Iterator[list[str]]:
    """The first statement of every transaction begun on the app's database in the block:
    the binding sent with its BEGIN, or the first statement it ran."""
    firsts: list[str] = []
    with database.watching() as sent:
        yield firsts
    begun = False
    for statement in sent:
        if statement == "BEGIN":
            begun = True
        elif statement.startswith("BEGIN; "):
            firsts.append(statement.removeprefix("BEGIN; "))
            begun = False
        elif begun:
            firsts.append(statement)
            begun = False


async def _callers(db: Database, api: httpx.AsyncClient) -> tuple[dict[str, Caller], str]:
    """A partner, one of its members (by token exchange) and an operator; the member's ref."""
    partner = await new_partner(db, api)
    ref = f"rs-{secrets.token_hex(4)}"
    await partner.gql(
        "mutation($r: String!, $e: String) { linkMember(input: {memberRef: $r, email: $e})"
        " { userErrors { code } } }",
        r=ref,
        e=email(),
    )
    async with db.transaction(SYSTEM) as conn:
        created = await clients.create_client(
            conn,
            scopes=["settlement:run", "settlement:read:all", "ledger:read:all", "partners:admin"],
        )
    assert created.client_secret is not None
    operator_token = await token_for(api, created.client_id, created.client_secret)
    member = await partner.member_token(ref, scope="wallet:read wallet:transfer offers:write")
    operator = Caller(api, operator_token, created.client_id, created.client_secret)
    return {"partner": partner, "member": member, "operator": operator}, ref


async def test_every_field_runs_its_database_work_under_the_callers_row_scope(
    db: Database, api: httpx.AsyncClient
) -> None:
    callers, ref = await _callers(db, api)
    introspected = await callers["partner"].gql(
        "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }"
    )
    schema = introspected["data"]["__schema"]
    fields = {f["name"] for kind in ("queryType", "mutationType") for f in schema[kind]["fields"]}
    assert fields == set(PROBES), f"no probe for {fields - set(PROBES)}"
    app_database: Database = api._transport.app.state.database  # type: ignore[attr-defined]

    reached: list[str] = []
    firsts: list[str] = []
    for field, (who, document) in PROBES.items():
        variables = {"ref": ref, "node": "UGFydG5lcjox", "e": email()}
        used = {k: v for k, v in variables.items() if f"${k}" in document}
        with first_statements(app_database) as these:
            result = await callers[who].gql(document, **used)
        assert "errors" not in result or field == "wallet", (field, result)
        firsts.extend(these)
        reached.extend([field] if these else [])

    # Every probe's ids are well formed, so each one reaches the database.
    assert set(PROBES) == set(reached), set(PROBES) - set(reached)
    unscoped = [statement for statement in firsts if not statement.lstrip().startswith(BINDING)]
    assert not unscoped, f"transactions not bound to the caller's scope: {unscoped}"
