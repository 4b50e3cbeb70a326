"""The schema, with its guards: masked unexpected errors, depth, alias and token limits,
and parser and validation caches of explicit sizes; each error logged once, in one line
unless it is unexpected."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLSchema, parse, specified_rules
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
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


# The depth and alias limiters make a new rule class each time they are built, and the
# validation cache is keyed by the rules: built per request, every request would miss
# the cache and be validated again (a third of a mutation's CPU). Built once here.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]
#: Every rule a document is validated with: GraphQL's own, then the limits. One tuple,
#: set by Guard and used by the direct lane, so both hit the same validation cache.
RULES = (*specified_rules, *LIMIT_RULES)


class Guard(MaskErrors):
    """Every guard of a request in one extension: the token limit on parsing, the depth
    and alias rules added to validation, the parser and validation caches, and masked
    unexpected errors. Strawberry builds and enters a context manager per extension and
    hook on every request; one extension instead of five took a tenth of a mutation's
    CPU out (docs/performance.md, issue 17).

    Masking: an unexpected error is replaced by a message with the request id; the
    original is logged with the same id (:meth:`_Schema.process_errors`), so support can
    find it and the client learns nothing internal."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = MAX_TOKENS
        context.validation_rules = RULES
        yield from super().on_operation()

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.graphql_document = parsed(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = validation_errors(
            context.schema._schema, context.query, context.validation_rules
        )
        yield

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return masked(error, _request_id(self.execution_context))


def masked(error: GraphQLError, request_id: str) -> GraphQLError:
    """An unexpected error as the client sees it: the request id, nothing internal."""
    return GraphQLError(
        message=f"Unexpected error (request id {request_id}); it was logged.",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


def guarded(errors: list[GraphQLError], request_id: str) -> list[GraphQLError]:
    """A result's errors logged (:func:`log_errors`), then the unexpected ones masked, as
    Guard and the schema do for the executor's results (for the direct lane)."""
    log_errors(errors, request_id)
    return [masked(error, request_id) if _should_mask(error) else error for error in errors]


#: Parsed documents by their text, CACHE_SIZE of them: bounded, so unique texts cannot
#: grow memory.
parsed = lru_cache(maxsize=CACHE_SIZE)(parse)


@lru_cache(maxsize=CACHE_SIZE)
def validation_errors(
    schema: GraphQLSchema, query: str, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """The validation errors of a document, keyed by its text rather than its syntax tree:
    a tree's hash walks every node on every request, a string's is computed once. Only
    a text that parsed gets here, and it parses to the same tree (the parse cache)."""
    return validate_document(schema, parsed(query, max_tokens=MAX_TOKENS), rules)


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


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log each error of a result once, before it is masked (:func:`log_error`); but
        not an unavailable database: the HTTP layer answers that with 503 and logs it in
        one line (an outage must not log a traceback per request)."""
        log_errors(errors, _request_id(execution_context))


def log_errors(errors: list[GraphQLError], request_id: str) -> None:
    """Each error once (:func:`log_error`), but not an unavailable database (see
    :meth:`_Schema.process_errors`)."""
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
    extensions=[Guard, QueryCost],
)
