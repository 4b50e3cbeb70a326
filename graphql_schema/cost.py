"""Query cost, Shopify style, and a per-client leaky bucket.

Static cost before execution, from the rows a document can make the server read:

- a scalar costs 0 and an object 1, plus its selection;
- a list costs, per item it can hold, 1 plus the item's selection; how many items it can
  hold is its ``first`` argument (capped at MAX_PAGE; absent: the argument's default, else
  DEFAULT_PAGE) or, for a list without one, the size declared on the field with
  :func:`list_size` (a connection's ``edges`` and a payload's ``userErrors`` count one per
  item of what holds them). Every list of objects has one or the other; a test walks the
  schema to keep it so;
- a paginated connection (an object with ``first``) costs 2 plus ``first`` times its
  selection;
- a mutation field costs MUTATION_COST, plus one point per ITEMS_PER_POINT items of the
  lists in its input (a bulk issuance of 1,000 earns: 100), plus its selection.

The request is refused above MAX_QUERY_COST or when the caller's bucket (MAXIMUM_AVAILABLE
points, refilled at RESTORE_RATE per second) can't pay for it. The bucket is one per
client for every server process together (:data:`COST_LIMIT`, leased in chunks from
PostgreSQL: exchange.limits); the context carries it. Every response carries
``extensions.cost``: requestedQueryCost, actualQueryCost and throttleStatus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from exchange.limits import Decision, Limit, SharedBuckets
from partners.principal import Principal

MAX_QUERY_COST = 1_000
MAXIMUM_AVAILABLE = 20_000
RESTORE_RATE = 5_000  # points per second: ~400 mutations a second per client
#: What one server process leases from a client's bucket at once: a client spending its
#: whole refill writes its bucket's row about five times a second per process.
LEASE_POINTS = 1_000
COST_LIMIT = Limit(
    "cost",
    capacity=MAXIMUM_AVAILABLE,
    refill_points=RESTORE_RATE,
    refill_seconds=1,
    lease_points=LEASE_POINTS,
)
DEFAULT_PAGE = 20
MAX_PAGE = 100
MUTATION_COST = 10
ITEMS_PER_POINT = 10
#: Lists whose items count once per item of what holds them: a connection's edges (its
#: ``first`` counts them) and a payload's userErrors (one per input at most).
PER_ITEM_LISTS = frozenset({"edges", "userErrors"})
_LIST_SIZE = "exchange.cost.list_size"


def list_size(items: int) -> dict[str, int]:
    """Field metadata: how many items a list field without a ``first`` argument costs as
    (``strawberry.field(metadata=list_size(1))``): the rows it can make us read. A list
    read whole with its parent (a run's positions live in the run's row) costs as one."""
    return {_LIST_SIZE: items}


def declared_list_size(definition: Any) -> int | None:
    """The items a list field can hold, as its definition declares (None: undeclared)."""
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    metadata = getattr(strawberry_field, "metadata", None) or {}
    size = metadata.get(_LIST_SIZE)
    return size if isinstance(size, int) else None


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
        if is_list_type(get_nullable_type(definition.type)):
            return self.items(node, definition) * (1 + inner)
        if "first" in definition.args:  # a paginated connection
            return 2 + self.first(node, definition) * inner
        return 1 + inner

    def items(self, node: FieldNode, definition: Any) -> int:
        """How many items a list field can return."""
        if "first" in definition.args:
            return self.first(node, definition)
        if node.name.value in PER_ITEM_LISTS:
            return 1
        declared = declared_list_size(definition)
        return declared if declared is not None else MAX_PAGE

    def first(self, node: FieldNode, definition: Any) -> int:
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = value_from_ast_untyped(argument.value, self.variables)
                if isinstance(value, int) and value > 0:
                    return min(value, MAX_PAGE)
        default = definition.args["first"].default_value
        return default if isinstance(default, int) and default > 0 else DEFAULT_PAGE

    def input_items(self, node: FieldNode) -> int:
        """How many items the lists in a field's arguments hold, all together."""
        arguments = node.arguments or ()
        return sum(_count(value_from_ast_untyped(a.value, self.variables)) for a in arguments)


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value) + sum(_count(item) for item in value)
    if isinstance(value, dict):
        return sum(_count(item) for item in value.values())
    return 0


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
        return sum(
            MUTATION_COST + -(-coster.input_items(f) // ITEMS_PER_POINT) + coster.field(f, root, 0)
            for f in fields
        )
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

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        chosen = _chosen(context.graphql_document, context.operation_name)
        if chosen is None:
            yield
            return
        operation, fragments = chosen
        self.cost, refused = await charge(
            context.context, context.schema._schema, operation, fragments, context.variables
        )
        if refused is not None:
            context.result = refused
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.cost} if self.cost is not None else {}


async def charge(
    context: Any,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any] | None,
) -> tuple[dict[str, Any], ExecutionResult | None]:
    """What an operation costs, taken from the caller's bucket: ``extensions.cost``, and
    the result that refuses it when the bucket can't pay (None: it may run)."""
    requested = query_cost(schema, operation, fragments, variables or {})
    decision = await _charge(context, requested)
    cost = {
        "requestedQueryCost": requested,
        "actualQueryCost": requested if decision.allowed else 0,
        "throttleStatus": {
            "maximumAvailable": MAXIMUM_AVAILABLE,
            "currentlyAvailable": decision.available,
            "restoreRate": RESTORE_RATE,
        },
    }
    if not decision.allowed:
        code = "MAX_COST_EXCEEDED" if requested > MAX_QUERY_COST else "THROTTLED"
        message = (
            f"query cost {requested} exceeds the limit of {MAX_QUERY_COST}"
            if requested > MAX_QUERY_COST
            else f"query cost {requested} exceeds the {decision.available} points available;"
            f" they refill at {RESTORE_RATE} per second"
        )
        extensions: dict[str, Any] = {"code": code}
        if decision.retry_after_seconds:
            extensions["retryAfterSeconds"] = decision.retry_after_seconds
        return cost, ExecutionResult(
            data=None, errors=[GraphQLError(message, extensions=extensions)]
        )
    return cost, None


async def _charge(context: Any, requested: int) -> Decision:
    """Take ``requested`` points from the caller's bucket (the context's ``cost_limits``;
    a context without one, a schema run outside the server, is not throttled)."""
    if requested > MAX_QUERY_COST:
        return Decision(allowed=False, available=0)
    buckets: SharedBuckets | None = getattr(context, "cost_limits", None)
    if buckets is None or requested == 0:
        return Decision(allowed=True, available=MAXIMUM_AVAILABLE)
    principal: Principal = context.principal
    return await buckets.take(principal.client_id, requested, scope=principal.row_scope())
