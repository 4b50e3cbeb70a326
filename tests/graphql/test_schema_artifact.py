from graphql_schema.export import SCHEMA_FILE, render


def test_the_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "graphql_schema/schema.graphql is stale: run `python -m graphql_schema.export`"
    )


def test_the_core_contract_is_in_the_schema() -> None:
    sdl = render()
    for line in [
        "scalar BigInt",
        "node(id: ID!): Node",
        "viewer: Viewer!",
        "member(memberRef: String!): Member",
        "wallet: Wallet",
        "linkMember(input: LinkMemberInput!): LinkMemberPayload!",
        "earnPoints(input: EarnPointsInput!): EarnPointsPayload!",
        "redeemPoints(input: RedeemPointsInput!): RedeemPointsPayload!",
        "holdPoints(input: HoldPointsInput!): HoldPointsPayload!",
        "captureHold(input: CaptureHoldInput!): CaptureHoldPayload!",
        "releaseHold(input: ReleaseHoldInput!): ReleaseHoldPayload!",
        "reverseTransaction(input: ReverseTransactionInput!): ReverseTransactionPayload!",
        "transferPoints(input: TransferPointsInput!): TransferPointsPayload!",
    ]:
        assert line in sdl, line
