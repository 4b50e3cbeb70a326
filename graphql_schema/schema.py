"""The schema, with its guards: masked unexpected errors, depth, alias and token limits,
and parser and validation caches of explicit sizes."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from graphql_schema.mutations import Mutation
from graphql_schema.queries import Query
from graphql_schema.scalars import SCALAR_MAP
from graphql_schema.types import Hold, Partner, Transaction
from graphql_schema.wallets import Member

log = logging.getLogger(__name__)

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 5_000
CACHE_SIZE = 512


def _should_mask(error: GraphQLError) -> bool:
    """Our own errors carry a code; syntax and validation errors have no original error.
    Anything else is unexpected: masked, and logged with its traceback."""
    original = error.original_error
    if original is None or (error.extensions or {}).get("code"):
        return False
    if isinstance(original, GraphQLError):
        return False
    log.error("unexpected error in %s", error.path, exc_info=original)
    return True


schema = strawberry.Schema(
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    query=Query,
    mutation=Mutation,
    types=[Transaction, Hold, Partner, Member],
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        lambda: MaskErrors(
            should_mask_error=_should_mask,
            error_message="Unexpected error; it was logged. Contact support if it persists.",
        ),
    ],
)
