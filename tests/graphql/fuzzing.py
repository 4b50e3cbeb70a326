"""What the schema fuzzer (tests/graphql/test_fuzz.py, scripts/fuzz) sends and what it
counts.

Documents come from ``hypothesis-graphql`` over the committed schema
(graphql_schema/schema.graphql), one root field at a time. Its own scalars are replaced
by values a hostile but informed client would send: global ids of rows the caller owns,
of another partner's rows and ids that are none of ours; member refs, e-mails and phones
of real members; idempotency keys that repeat; cursors; CEL; and NULs, unpaired
surrogates, very long strings, numbers past 32 and 64 bits, decimals past any precision,
datetimes out of range. Some arguments are lifted into variables (at any depth of an
input object), some of those get a value of the wrong JSON type. A fifth of the
documents break the schema on purpose (``Mode.NEGATIVE``).

Each response is classified: its HTTP status; whether the server answered with a masked
internal error; whether a resolver ran (the document passed parsing, validation and the
cost limit: there is ``data``, or an error with the path of the field that failed);
whether the field succeeded; whether it leaked another partner's secrets.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import graphql
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

import graphql_schema

SCHEMA_TEXT = (Path(graphql_schema.__file__).parent / "schema.graphql").read_text()
SCHEMA = graphql.build_schema(SCHEMA_TEXT)
QUERY_FIELDS = sorted(SCHEMA.query_type.fields) if SCHEMA.query_type else []
MUTATION_FIELDS = sorted(SCHEMA.mutation_type.fields) if SCHEMA.mutation_type else []
ROOT_FIELDS = [*QUERY_FIELDS, *MUTATION_FIELDS]
#: Root query fields that page (a cursor of each is a string worth sending back).
CONNECTIONS = [
    name
    for name in QUERY_FIELDS
    if SCHEMA.query_type is not None
    and graphql.get_named_type(SCHEMA.query_type.fields[name].type).name.endswith("Connection")
]
KINDS = ("partner", "operator", "member")
MASKED = "Unexpected error"
INTERNAL_CODES = frozenset({"INTERNAL_SERVER_ERROR", "INTERNAL_ERROR", "INTERNAL"})

NUL, SURROGATE = "\x00", "\ud800"
HOSTILE_STRINGS = [
    "",
    " ",
    "a" * 201,
    "x" * 5_000,
    f"a{NUL}b",
    f"bad{SURROGATE}",
    f"{NUL}@example.com",
    "\u202eevil",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 😀",
    "'; DROP TABLE ledger_entry; --",
    "%s%n%x",
    "\n\t\r",
    "null",
    "true",
    "0",
    "-1",
    "9" * 30,
]
HOSTILE_INTS = [0, -1, 1, 2**31 - 1, -(2**31), 2**53, 2**63, -(2**63) - 1, 10**30]
HOSTILE_DECIMALS = [
    "0", "-1", "1e400", "-1e-400", "NaN", "Infinity", "-Infinity", "1" * 40, "0." + "0" * 40 + "1",
    "1.123456789012345", "12,50", "", "abc", "1_000", "٣",
]  # fmt: skip
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+14:00", "2026-01-01T00:00:00",
    "2026-13-45T25:61:61+00:00", "now", "", "2026-01-01", "1970-01-01T00:00:00-23:59",
]  # fmt: skip
CEL = ["true", "false", "purchase.amount > 10", "member.tier == 'Gold'", "1/0 == 1", "(((("]
CURRENCIES = ["USD", "EUR", "JPY", "usd", "XXX", "XAU", "ZZZ"]


@dataclass
class Pools:
    """What one caller's documents are built from: ids it owns (``own_ids``), another
    partner's (``foreign_ids``), and strings a client of that kind would know."""

    own_ids: list[str]
    foreign_ids: list[str]
    strings: list[str]


@dataclass(frozen=True)
class Request:
    """One generated request: the document, its variables, the Accept header."""

    query: str
    variables: dict[str, Any]
    accept: str

    def body(self) -> bytes:
        """JSON with ASCII escapes: how an attacker writes NULs and lone surrogates."""
        document: dict[str, Any] = {"query": self.query}
        if self.variables:
            document["variables"] = self.variables
        return json.dumps(document, ensure_ascii=True).encode()


def _string(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


def _int(value: int) -> graphql.IntValueNode:
    return graphql.IntValueNode(value=str(value))


def synthetic_ids() -> list[str]:
    """Ids that are none of ours, or ours for rows that do not exist."""
    raw = [b"Transaction:" + b"9" * 19, b"Transaction:0", b"Transaction:-1", b"Hold:007",
           b"Nope:1", b"Partner:99999999", b"Member:1:2", b"SettlementRun:9223372036854775807",
           b"Campaign:9223372036854775808", b"Purchase:\xd9\xa3"]  # fmt: skip
    encoded = [base64.urlsafe_b64encode(r).decode().rstrip("=") for r in raw]
    return [*encoded, encoded[0] + "==", "", "not-an-id", "VHJhbnNhY3Rpb246MQ"]


def now_ish() -> list[str]:
    now = datetime.now(UTC)
    return [
        (now + timedelta(days=days)).isoformat(timespec="seconds")
        for days in (-400, -30, -1, 0, 1, 30, 3650)
    ]


def scalars(pools: Pools) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Value strategies for every scalar of the schema, the built-in ones included."""
    ids = pools.own_ids + pools.foreign_ids + synthetic_ids()
    strings = st.one_of(
        st.sampled_from(pools.strings),
        st.sampled_from(pools.strings),
        st.sampled_from(HOSTILE_STRINGS + CEL + CURRENCIES + ids),
        st.text(max_size=40),
    )
    small = st.sampled_from([1, 2, 5, 10, 30, 50, 100, 101, 1000])
    return {
        "ID": st.one_of(st.sampled_from(ids), st.sampled_from(pools.own_ids)).map(_string)
        | st.integers(min_value=-5, max_value=10**20).map(_int),
        "String": strings.map(_string),
        "Int": st.one_of(small, small, st.sampled_from(HOSTILE_INTS), st.integers()).map(_int),
        "BigInt": st.one_of(
            small.map(str).map(_string),
            st.sampled_from(HOSTILE_INTS).map(str).map(_string),
            st.sampled_from(["abc", "", "1e3", "--5", "٣", "9" * 5000]).map(_string),
            small.map(_int),
        ),
        "Decimal": st.one_of(
            st.sampled_from(["12.50", "1", "0.5", "2", "100.00", "0.01"]),
            st.sampled_from(HOSTILE_DECIMALS),
            st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
        ).map(_string),
        "DateTime": st.one_of(
            st.sampled_from(now_ish()), st.sampled_from(HOSTILE_TIMES), st.datetimes().map(str)
        ).map(_string),
    }


def documents(pools: Pools, root_field: str) -> st.SearchStrategy[graphql.DocumentNode]:
    """Documents for one root field: valid ones mostly, one in five with a schema error
    (for a field with arguments: ``Mode.NEGATIVE`` breaks one of them)."""
    custom = scalars(pools)

    def of(mode: Mode) -> st.SearchStrategy[graphql.DocumentNode]:
        built: st.SearchStrategy[graphql.DocumentNode] = from_schema(
            SCHEMA, fields=[root_field], custom_scalars=custom, print_ast=_same, mode=mode
        )
        return built

    root = SCHEMA.query_type if root_field in QUERY_FIELDS else SCHEMA.mutation_type
    if root is None or not root.fields[root_field].args:  # nothing to break
        return of(Mode.POSITIVE)
    return st.one_of(of(Mode.POSITIVE), of(Mode.POSITIVE), of(Mode.POSITIVE),
                     of(Mode.POSITIVE), of(Mode.NEGATIVE))  # fmt: skip


def _same(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


HOSTILE_JSON: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([2**64, -(2**63) - 1, 1.5, 1e308, True, None, {}, [], "", NUL, SURROGATE]),
    st.recursive(
        st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ),
    st.just(json.loads("[" * 40 + "]" * 40)),  # nested past the JSON depth limit
)


@dataclass
class _Lifting:
    draw: Callable[[st.SearchStrategy[Any]], Any]
    definitions: list[graphql.VariableDefinitionNode] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    def value(self, node: graphql.ValueNode, type_: graphql.GraphQLInputType) -> graphql.ValueNode:
        """``node``, or a variable in its place (its value possibly of the wrong type);
        inside an input object, the same for each of its fields."""
        if self.draw(st.integers(min_value=0, max_value=3)) == 0:
            name = f"v{len(self.definitions)}"
            self.definitions.append(
                graphql.VariableDefinitionNode(
                    variable=graphql.VariableNode(name=graphql.NameNode(value=name)),
                    type=graphql.parse_type(str(type_)),
                )
            )
            hostile = self.draw(st.integers(min_value=0, max_value=9)) == 0
            value = self.draw(HOSTILE_JSON) if hostile else graphql.value_from_ast_untyped(node)
            self.variables[name] = value
            return graphql.VariableNode(name=graphql.NameNode(value=name))
        named = graphql.get_nullable_type(type_)
        if isinstance(node, graphql.ObjectValueNode) and isinstance(
            named, graphql.GraphQLInputObjectType
        ):
            fields = [
                graphql.ObjectFieldNode(
                    name=item.name,
                    value=self.value(item.value, named.fields[item.name.value].type)
                    if item.name.value in named.fields
                    else item.value,
                )
                for item in node.fields
            ]
            return graphql.ObjectValueNode(fields=tuple(fields))
        return node


def with_variables(
    document: graphql.DocumentNode, draw: Callable[[st.SearchStrategy[Any]], Any]
) -> tuple[graphql.DocumentNode, dict[str, Any]]:
    """Some of the root fields' argument values (or parts of them) lifted into variables."""
    lifting = _Lifting(draw)
    operations = []
    for definition in document.definitions:
        if not isinstance(definition, graphql.OperationDefinitionNode):
            operations.append(definition)
            continue
        root = SCHEMA.get_root_type(definition.operation)
        selections = []
        for selection in definition.selection_set.selections:
            target = root.fields.get(selection.name.value) if root else None
            if isinstance(selection, graphql.FieldNode) and target is not None:
                arguments = [
                    graphql.ArgumentNode(
                        name=argument.name,
                        value=lifting.value(argument.value, target.args[argument.name.value].type)
                        if argument.name.value in target.args
                        else argument.value,
                    )
                    for argument in selection.arguments or ()
                ]
                selection = graphql.FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=tuple(arguments),
                    directives=selection.directives,
                    selection_set=selection.selection_set,
                )
            selections.append(selection)
        operations.append(
            graphql.OperationDefinitionNode(
                operation=definition.operation,
                name=definition.name,
                variable_definitions=tuple(lifting.definitions),
                directives=definition.directives,
                selection_set=graphql.SelectionSetNode(selections=tuple(selections)),
            )
        )
    return graphql.DocumentNode(definitions=tuple(operations)), lifting.variables


def with_user_errors(document: graphql.DocumentNode) -> graphql.DocumentNode:
    """``document`` with ``userErrors { code field }`` selected on every root mutation
    field whose payload has them, so that a refusal is never counted as a success."""
    operations = []
    for definition in document.definitions:
        if (
            not isinstance(definition, graphql.OperationDefinitionNode)
            or definition.operation != graphql.OperationType.MUTATION
            or SCHEMA.mutation_type is None
        ):
            operations.append(definition)
            continue
        selections = [
            _selecting_user_errors(selection, SCHEMA.mutation_type)
            for selection in definition.selection_set.selections
        ]
        operations.append(
            graphql.OperationDefinitionNode(
                operation=definition.operation,
                name=definition.name,
                variable_definitions=definition.variable_definitions,
                directives=definition.directives,
                selection_set=graphql.SelectionSetNode(selections=tuple(selections)),
            )
        )
    return graphql.DocumentNode(definitions=tuple(operations))


def _selecting_user_errors(
    selection: graphql.SelectionNode, root: graphql.GraphQLObjectType
) -> graphql.SelectionNode:
    target = (
        root.fields.get(selection.name.value) if isinstance(selection, graphql.FieldNode) else None
    )
    payload = graphql.get_named_type(target.type) if target is not None else None
    if (
        not isinstance(selection, graphql.FieldNode)
        or not isinstance(payload, graphql.GraphQLObjectType)
        or "userErrors" not in payload.fields
        or selection.selection_set is None
    ):
        return selection
    user_errors = graphql.parse("{ userErrors { code field } }").definitions[0]
    assert isinstance(user_errors, graphql.OperationDefinitionNode)
    return graphql.FieldNode(
        alias=selection.alias,
        name=selection.name,
        arguments=selection.arguments,
        directives=selection.directives,
        selection_set=graphql.SelectionSetNode(
            selections=(
                *selection.selection_set.selections,
                *user_errors.selection_set.selections,
            )
        ),
    )


@st.composite
def requests(draw: st.DrawFn, documents: st.SearchStrategy[graphql.DocumentNode]) -> Request:
    """A request around a document of ``documents`` (its mutation payloads' userErrors
    selected)."""
    document = with_user_errors(draw(documents))
    if draw(st.booleans()):
        document, variables = with_variables(document, draw)
    else:
        variables = {}
    accept = draw(st.sampled_from(["application/json", "application/graphql-response+json"]))
    return Request(graphql.print_ast(document), variables, accept)


@dataclass
class Outcome:
    status: int
    internal: list[str]
    executed: bool
    succeeded: bool
    leaked: list[str]


def classify(root_field: str, status: int, text: str, secrets: Iterable[str] = ()) -> Outcome:
    """What a response says: masked internal errors, whether a resolver ran (``data``
    is there), whether the field succeeded (a value, no error, no userError) and which
    of ``secrets`` it shows."""
    try:
        body = json.loads(text)
    except ValueError:
        body = {}
    errors = (body.get("errors") or []) if isinstance(body, dict) else []
    internal = [
        str(error.get("message"))
        for error in errors
        if isinstance(error, dict)
        and (
            str(error.get("message", "")).startswith(MASKED)
            or (error.get("extensions") or {}).get("code") in INTERNAL_CODES
        )
    ]
    data = body.get("data") if isinstance(body, dict) else None
    value = data.get(root_field) if isinstance(data, dict) else None
    succeeded = value is not None and not errors and not _user_errors(value)
    leaked = [secret for secret in secrets if secret in text]
    # A resolver ran: it returned data, or its error carries the path it failed at (a
    # document refused before execution has neither).
    ran = isinstance(data, dict) or any(isinstance(e, dict) and e.get("path") for e in errors)
    return Outcome(status, internal, ran, succeeded, leaked)


def _user_errors(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("userErrors"))


@dataclass
class Tally:
    """Counts of one token kind."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    internal_errors: int = 0
    executed: int = 0
    succeeded: int = 0
    leaks: int = 0
    sent_by_field: Counter[str] = field(default_factory=Counter)
    executed_by_field: Counter[str] = field(default_factory=Counter)
    succeeded_by_field: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, root_field: str, outcome: Outcome, request: Request) -> None:
        self.sent += 1
        self.statuses[outcome.status] += 1
        self.internal_errors += bool(outcome.internal)
        self.executed += outcome.executed
        self.succeeded += outcome.succeeded
        self.leaks += bool(outcome.leaked)
        self.sent_by_field[root_field] += 1
        self.executed_by_field[root_field] += outcome.executed
        self.succeeded_by_field[root_field] += outcome.succeeded
        if (outcome.internal or outcome.leaked or outcome.status >= 500) and len(
            self.examples
        ) < 20:
            self.examples.append(json.dumps({"query": request.query, "vars": request.variables}))

    def never_executed(self) -> list[str]:
        """Fields sent whose resolvers never ran."""
        return sorted(f for f in self.sent_by_field if not self.executed_by_field[f])

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "internal_errors": self.internal_errors,
            "executed_a_resolver": self.executed,
            "succeeded": self.succeeded,
            "leaks": self.leaks,
            "fields_never_executed": self.never_executed(),
            "succeeded_by_field": dict(sorted(self.succeeded_by_field.items())),
            "failing_examples": self.examples,
        }
