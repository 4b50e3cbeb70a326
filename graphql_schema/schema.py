"""The schema, with its guards: masked unexpected errors, depth, alias and token limits,
and parser and validation caches of explicit sizes; each error logged once, in one line
unless it is unexpected."""

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
from exchange.kit.logs import REQUEST_ID, without_values
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
    """Replace an unexpected error by a message with the request id; the original is
    logged with the same id (:meth:`_Schema.process_errors`), so support can find it and
    the client learns nothing internal."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = _request_id(self.execution_context)
        return GraphQLError(
            message=f"Unexpected error (request id {request_id}); it was logged.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def _request_id(execution_context: ExecutionContext | None) -> str:
    context = execution_context.context if execution_context is not None else None
    return getattr(context, "request_id", "") or REQUEST_ID.get() or "unknown"


def log_error(error: GraphQLError, request_id: str) -> None:
    """One line for a client's mistake (a validation error, a missing scope, a bad id, a
    page too large: INFO, no traceback, no value the client sent); the traceback of an
    unexpected error (ERROR)."""
    where = ".".join(str(step) for step in error.path or ()) or "document"
    extra = {"request_id": request_id}
    if _should_mask(error):
        log.error("unexpected error at %s", where, exc_info=error.original_error, extra=extra)
        return
    code = (error.extensions or {}).get("code") or (
        "GRAPHQL_PARSE_FAILED"
        if error.message.startswith("Syntax Error")
        else "GRAPHQL_VALIDATION_FAILED"
    )
    message = without_values(error.message)
    log.info("client error %s at %s: %s", code, where, message, extra=extra)


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
        """Log each error of a result once, before it is masked (:func:`log_error`); but
        not an unavailable database: the HTTP layer answers that with 503 and logs it in
        one line (an outage must not log a traceback per request)."""
        request_id = _request_id(execution_context)
        for error in errors:
            if not isinstance(error.original_error, DatabaseUnavailable):
                log_error(error, request_id)


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
