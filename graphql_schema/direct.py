"""The direct lane: a hot mutation answered without the generic executor.

A document that is one mutation of a field in :data:`DIRECT`, whose selection reads only
plain fields (no resolver, no arguments, no directives, no fragments: ``transaction { id
points }``, ``userErrors { code field message }``), is compiled once per text into a
:class:`Plan`. Running a plan does what the executor would, with the same functions
but one: graphql-core coerces the variables and the field's arguments, the query cost is
charged (graphql_schema.cost), the input is converted as Strawberry converts it (by a
conversion compiled with the plan, held equal to Strawberry's by a test), the mutation's
own function runs (the one its resolver calls), and the payload is rendered field by
field with the schema's own serializers. Errors are logged and masked as Guard does.

Nothing is decided here that the executor would decide otherwise: a document the lane
can't compile, or a request whose variables or arguments are refused, goes the usual
way, which reports the error; the lane itself refuses nothing and runs nothing twice
(it steps aside only before the bucket is charged). What it saves is the executor's
per-request machinery: extension hooks, execution contexts, per-field resolver wrappers
and result completion, a third of a mutation's CPU (docs/performance.md, issue 17).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import MISSING, dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    is_leaf_type,
    located_error,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types import ExecutionResult
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

from exchange.kit.limits import MAX_TOKENS
from graphql_schema.context import Context
from graphql_schema.cost import charge
from graphql_schema.loyalty import record
from graphql_schema.mutations import earn, redeem
from graphql_schema.schema import CACHE_SIZE, RULES, guarded, parsed, schema, validation_errors

#: The mutations the lane answers, by root field: each one's own function, the one its
#: resolver calls, so both ways run the same code.
DIRECT: Mapping[str, Callable[..., Awaitable[Any]]] = {
    "earnPoints": earn,
    "redeemPoints": redeem,
    "recordPurchase": record,
}

Render = Callable[[Any], Any]
#: Coerced GraphQL input (graphql-core's dicts) to the resolver's Python values.
Convert = Callable[[Any], Any]


class Ineligible(Exception):
    """A selection or an input the lane does not take (the document goes the usual way)."""


class NullField(Exception):
    """A non-null field whose value is null: a bug of ours, masked like any other."""


@dataclass(frozen=True)
class Plan:
    operation: OperationDefinitionNode
    field: FieldNode
    key: str
    definition: GraphQLField
    convert: Convert
    mutation: Callable[..., Awaitable[Any]]
    render: Render


@lru_cache(maxsize=CACHE_SIZE)
def plan_of(query: str, operation_name: str | None) -> Plan | None:
    """The plan of a document, or None when the lane does not take it. Cached by text,
    as the parser and validation caches are (the same bound)."""
    try:
        document = parsed(query, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return None
    if validation_errors(schema._schema, query, RULES) or len(document.definitions) != 1:
        return None
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode) or not _one_mutation(
        operation, operation_name
    ):
        return None
    node = operation.selection_set.selections[0]
    root = schema._schema.mutation_type
    if not isinstance(node, FieldNode) or node.directives or root is None:
        return None
    mutation = DIRECT.get(node.name.value)
    if mutation is None:
        return None
    definition = root.fields[node.name.value]
    try:
        render = _compile(definition.type, node)
        convert = _arguments(definition.extensions["strawberry-definition"].arguments)
    except Ineligible:
        return None
    return Plan(
        operation=operation,
        field=node,
        key=(node.alias or node.name).value,
        definition=definition,
        convert=convert,
        mutation=mutation,
        render=render,
    )


def _one_mutation(operation: OperationDefinitionNode, operation_name: str | None) -> bool:
    """A mutation (the one named, if a name is asked for) of one root field."""
    return (
        operation.operation == OperationType.MUTATION
        and not operation.directives
        and (operation_name is None or (operation.name and operation.name.value) == operation_name)
        and len(operation.selection_set.selections) == 1
    )


def _compile(field_type: GraphQLOutputType, node: FieldNode) -> Render:
    """How to render a value of ``field_type`` as ``node`` selects it, null checked."""
    nullable = not isinstance(field_type, GraphQLNonNull)
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    render: Render
    if isinstance(inner, GraphQLList):
        item = _compile(inner.of_type, node)
        render = lambda values: [item(value) for value in values]  # noqa: E731
    elif is_leaf_type(inner):
        render = inner.serialize  # what the executor calls for a leaf
    elif isinstance(inner, GraphQLObjectType) and node.selection_set is not None:
        render = _compile_object(inner, node.selection_set)
    else:  # an interface or a union: the executor resolves the concrete type
        raise Ineligible

    def complete(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise NullField(f"{node.name.value} is null")
        return render(value)

    return complete


def _compile_object(object_type: GraphQLObjectType, selections: SelectionSetNode) -> Render:
    fields: list[tuple[str, Render]] = []
    for selection in selections.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            raise Ineligible
        key = (selection.alias or selection.name).value
        if any(key == known for known, _ in fields):
            raise Ineligible  # fields merged under one key: the executor's job
        fields.append((key, _reader(object_type, selection)))
    return lambda value: {key: read(value) for key, read in fields}


def _reader(object_type: GraphQLObjectType, selection: FieldNode) -> Render:
    """How to read one selected field of an object: a plain attribute, rendered."""
    name = selection.name.value
    if name == "__typename":
        return lambda _value: object_type.name
    definition = object_type.fields.get(name)
    plain = (definition.extensions or {}).get("strawberry-definition") if definition else None
    if (
        definition is None
        or plain is None
        or plain.base_resolver is not None
        or plain.extensions
        or plain.permission_classes
    ):
        raise Ineligible
    attribute, complete = plain.python_name, _compile(definition.type, selection)
    return lambda value: complete(getattr(value, attribute))


def _arguments(arguments: list[Any]) -> Convert:
    """The field's arguments converted as Strawberry's ``convert_arguments`` converts
    them, compiled once per field: Strawberry works out each value's type anew on every
    call (8 % of a purchase's CPU). Only what the lane's inputs use is compiled (scalars,
    enums, lists, optionals, plain input types that do not contain themselves); anything
    else is ineligible."""
    names = schema.config.name_converter
    converters = [(a.python_name, names.from_argument(a), converter_of(a.type)) for a in arguments]
    return lambda raw: {
        python: convert(raw[name]) for python, name, convert in converters if name in raw
    }


def converter_of(type_: Any, within: frozenset[Any] = frozenset()) -> Convert:
    """How Strawberry converts a value of ``type_``: null and UNSET stay as they are.
    ``within``: the input types being compiled around this one."""
    if isinstance(type_, LazyType):
        type_ = type_.resolve_type()
    if isinstance(type_, StrawberryMaybe):
        raise Ineligible  # Some() wrapping and its null rule: left to Strawberry
    if isinstance(type_, StrawberryOptional):
        return converter_of(type_.of_type, within)
    if isinstance(type_, StrawberryList):
        item = converter_of(type_.of_type, within)
        return _absent_kept(lambda values: [item(value) for value in values])
    if isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_):
        return _as_is  # graphql-core already gave the member
    if is_scalar(type_, schema.schema_converter.scalar_registry):
        if type_ is GlobalID:
            raise Ineligible  # decoded by Strawberry
        return _as_is
    if has_object_definition(type_):
        return _input(type_, within)
    raise Ineligible


def _input(type_: Any, within: frozenset[Any]) -> Convert:
    definition = type_.__strawberry_definition__
    if definition.from_input is not None or not definition.is_input or type_ in within:
        raise Ineligible  # an input that builds itself, or one that contains itself
    names = schema.config.name_converter
    defaults = {
        f.python_name: None
        for f in definition.fields
        if f.default_value is MISSING and f.default_factory is MISSING
    }
    fields = [
        (
            f.python_name,
            names.from_field(f),
            converter_of(f.resolve_type(type_definition=definition), within | {type_}),
        )
        for f in definition.fields
    ]

    def build(value: Any) -> Any:
        kwargs = dict(defaults)
        for python, name, convert in fields:
            if name in value:
                kwargs[python] = convert(value[name])
        return type_(**kwargs)

    return _absent_kept(build)


def _as_is(value: Any) -> Any:
    return value


def _absent_kept(convert: Convert) -> Convert:
    return lambda value: value if value is None or value is UNSET else convert(value)


async def execute(plan: Plan, context: Context, variables: Any) -> ExecutionResult | None:
    """The plan's result for one request, or None: the usual way must answer it (its
    variables or arguments are refused; nothing was charged or run)."""
    if variables is not None and not isinstance(variables, dict):
        return None
    coerced = get_variable_values(
        schema._schema, plan.operation.variable_definitions or (), variables or {}
    )
    if isinstance(coerced, list):
        return None
    try:
        raw = get_argument_values(plan.definition, plan.field, coerced)
    except GraphQLError:
        return None
    cost, refused = await charge(context, schema._schema, plan.operation, {}, variables)
    if refused is not None:  # logged as the executor logs it, in one line
        errors = guarded(list(refused.errors or ()), context.request_id)
        return ExecutionResult(data=None, errors=errors, extensions={"cost": cost})
    try:
        kwargs = plan.convert(raw)
        data: dict[str, Any] | None = {
            plan.key: plan.render(await plan.mutation(context, **kwargs))
        }
    except Exception as error:  # as the executor: the field's error, masked if unexpected
        failure = located_error(error, [plan.field], [plan.key])
        data = None if isinstance(plan.definition.type, GraphQLNonNull) else {plan.key: None}
        return ExecutionResult(
            data=data, errors=guarded([failure], context.request_id), extensions={"cost": cost}
        )
    return ExecutionResult(data=data, errors=None, extensions={"cost": cost})
