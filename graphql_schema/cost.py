"""Query cost, Shopify style, and a per-client leaky bucket.

Static cost before execution: each object field costs 1, a scalar 0, a mutation field
10; a paginated field (one with a ``first`` argument) costs 2 plus ``first`` (default
20) times its selection; an unpaginated list is bounded and counts once. The
request is refused above MAX_QUERY_COST or when the caller's bucket (MAXIMUM_AVAILABLE
points, refilled at RESTORE_RATE per second) can't pay for it. Every response carries
``extensions.cost``: requestedQueryCost, actualQueryCost and throttleStatus.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

MAX_QUERY_COST = 1_000
MAXIMUM_AVAILABLE = 20_000
RESTORE_RATE = 5_000  # points per second: ~400 mutations a second per client
DEFAULT_PAGE = 20
MUTATION_COST = 10


@dataclass
class _Bucket:
    available: float
    updated: float


_buckets: dict[str, _Bucket] = {}


def _take(client_id: str, cost: int) -> tuple[bool, float]:
    now = time.monotonic()
    bucket = _buckets.setdefault(client_id, _Bucket(MAXIMUM_AVAILABLE, now))
    bucket.available = min(
        MAXIMUM_AVAILABLE, bucket.available + (now - bucket.updated) * RESTORE_RATE
    )
    bucket.updated = now
    if cost > bucket.available:
        return False, bucket.available
    bucket.available -= cost
    return True, bucket.available


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables

    def selection(self, node: SelectionSetNode | None, parent: Any, depth: int = 0) -> int:
        if node is None or depth > 50:
            return 0
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, depth)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = self.schema.get_type(selection.type_condition.name.value) or parent
                total += self.selection(selection.selection_set, target, depth + 1)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value) or parent
                    total += self.selection(fragment.selection_set, target, depth + 1)
        return total

    def field(self, node: FieldNode, parent: Any, depth: int) -> int:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:  # __typename and introspection
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        inner = self.selection(node.selection_set, named, depth + 1)
        if "first" in definition.args:  # a paginated connection
            return 2 + self.first(node) * inner
        return 1 + inner

    def first(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = value_from_ast_untyped(argument.value, self.variables)
                if isinstance(value, int) and value > 0:
                    return min(value, 100)
        return DEFAULT_PAGE


def query_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> int:
    coster = _Coster(schema, fragments, variables)
    if operation.operation == OperationType.MUTATION:
        root = schema.mutation_type
        fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
        return sum(MUTATION_COST + coster.field(f, root, 0) for f in fields)
    root = schema.query_type if operation.operation == OperationType.QUERY else None
    return coster.selection(operation.selection_set, root) if root else 1


def _chosen(
    document: DocumentNode | None, wanted: str | None
) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]] | None:
    """The operation the request runs and the document's fragments by name (None: there
    is no such operation; execution reports that)."""
    if document is None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next(
        (o for o in operations if wanted is None or (o.name and o.name.value == wanted)),
        None,
    )
    if operation is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation, fragments


class QueryCost(SchemaExtension):
    def __init__(self) -> None:
        self.cost: dict[str, Any] | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        chosen = _chosen(context.graphql_document, context.operation_name)
        if chosen is None:
            yield
            return
        operation, fragments = chosen
        requested = query_cost(
            context.schema._schema, operation, fragments, context.variables or {}
        )
        client_id = getattr(getattr(context.context, "principal", None), "client_id", "")
        allowed, left = (False, 0.0) if requested > MAX_QUERY_COST else _take(client_id, requested)
        self.cost = {
            "requestedQueryCost": requested,
            "actualQueryCost": requested if allowed else 0,
            "throttleStatus": {
                "maximumAvailable": MAXIMUM_AVAILABLE,
                "currentlyAvailable": int(left),
                "restoreRate": RESTORE_RATE,
            },
        }
        if not allowed:
            code = "MAX_COST_EXCEEDED" if requested > MAX_QUERY_COST else "THROTTLED"
            message = (
                f"query cost {requested} exceeds the limit of {MAX_QUERY_COST}"
                if requested > MAX_QUERY_COST
                else f"query cost {requested} exceeds the {int(left)} points available;"
                f" they refill at {RESTORE_RATE} per second"
            )
            context.result = ExecutionResult(
                data=None, errors=[GraphQLError(message, extensions={"code": code})]
            )
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.cost} if self.cost is not None else {}
