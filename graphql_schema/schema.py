"""The schema, with its guards: masked unexpected errors, depth, alias and token limits,
and parser and validation caches of explicit sizes."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from exchange.kit.errors import DatabaseUnavailable
from exchange.kit.limits import MAX_ALIASES, MAX_QUERY_DEPTH, MAX_TOKENS
from graphql_schema.cost import QueryCost
from graphql_schema.insights import Offer, Segment
from graphql_schema.loyalty import Campaign, Purchase
from graphql_schema.mutations import Mutation
from graphql_schema.queries import Query
from graphql_schema.scalars import SCALAR_MAP
from graphql_schema.settlement import SettlementRun
from graphql_schema.subscriptions import Subscription
from graphql_schema.types import Hold, Partner, Transaction
from graphql_schema.wallets import Member
from graphql_schema.webhooks import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

CACHE_SIZE = 512


def _should_mask(error: GraphQLError) -> bool:
    """Our own errors carry a code; syntax and validation errors have no original error;
    an unavailable database is answered 503 by the HTTP layer. Anything else is
    unexpected."""
    original = error.original_error
    if original is None or (error.extensions or {}).get("code"):
        return False
    return not isinstance(original, GraphQLError | DatabaseUnavailable)


class MaskUnexpectedErrors(MaskErrors):
    """Replace an unexpected error by a message with the request id; log the original
    with the same id, so support can find it and the client learns nothing internal."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", "") or "unknown"
        log.error(
            "unexpected error (request %s) at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Unexpected error (request id {request_id}); it was logged.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


# The depth and alias limiters make a new rule class each time they are built, and the
# validation cache is keyed by the rules: built per request, every request would miss
# the cache and be validated again (a third of a mutation's CPU). Built once here.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log the errors of a result, but an unavailable database: the HTTP layer answers
        that with 503 and logs it in one line (an outage must not log a traceback per
        request)."""
        logged = [e for e in errors if not isinstance(e.original_error, DatabaseUnavailable)]
        super().process_errors(logged, execution_context)


schema = _Schema(
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[
        Transaction,
        Hold,
        Partner,
        Member,
        SettlementRun,
        Purchase,
        Campaign,
        WebhookEndpoint,
        WebhookDelivery,
        Segment,
        Offer,
    ],
    extensions=[
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        MaskUnexpectedErrors,
        QueryCost,
    ],
)
