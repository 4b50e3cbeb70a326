import re

from graphql_schema.export import SCHEMA_FILE, render


def signatures(sdl: str) -> str:
    """The SDL without descriptions, each field on one line: a described argument makes
    the printer spread the field's arguments over lines of their own."""
    bare = re.sub(r'[ \t]*"""(?:.|\n)*?"""\n', "", sdl)
    return re.sub(
        r"\(\n((?:[ \t]+[^\n]*\n)+?)[ \t]*\)",
        lambda m: "(" + ", ".join(line.strip() for line in m[1].splitlines()) + ")",
        bare,
    )


def test_the_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "graphql_schema/schema.graphql is stale: run `python -m graphql_schema.export`"
    )


def test_the_core_contract_is_in_the_schema() -> None:
    sdl = signatures(render())
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


def test_signatures_join_described_arguments() -> None:
    sdl = (
        'type Q {\n  """A field."""\n  f(\n    """An argument."""\n'
        "    a: Int!\n    b: String = null\n  ): Int\n}\n"
    )

    assert signatures(sdl) == "type Q {\n  f(a: Int!, b: String = null): Int\n}\n"
