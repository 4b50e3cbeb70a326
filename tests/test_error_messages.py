"""Error messages name objects through the mechanism of exchange.kit.errors (a ``{name}``
placeholder and a ``Ref``), never by interpolating an internal id: the API renders a
reference as the global ID its client knows, the CLI as the number an operator reads.

The walk reads every production module and fails on a domain error (or a GraphQL error)
whose message is an f-string interpolating an id: a name ``id``, ``*_id`` or ``*_ids``, or
one of the names this code gives ids (``issuer``, ``funder``, ``owner``)."""

from __future__ import annotations

import ast
import re

import pytest

from exchange.kit.errors import DomainError, Kind, NotFound, Ref, plain
from exchange.kit.invariant import InvariantViolation
from graphql_schema import ids
from tests.test_code_shape import parsed

ID_NAME = re.compile(r"^(id|.*_ids?|issuer|funder|owner)$")
#: Interpolated names that look like ids and are not internal numbers.
NOT_INTERNAL = {
    "client_id": "an OAuth client id: the string its holder was given",
    "request_id": "the id of a failed request, which the client quotes to support",
}
#: Calls whose first argument (or ``message=``) is a message a client can read.
ALSO_MESSAGES = {"GraphQLError"}


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _identifiers(expression: ast.expr) -> list[str]:
    found = []
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
    return found


def error_classes(trees: list[tuple[str, ast.Module]]) -> set[str]:
    """DomainError and every class defined under it, by name, across the trees."""
    names = {"DomainError"}
    while True:
        more = {
            node.name
            for _, tree in trees
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(isinstance(base, ast.Name) and base.id in names for base in node.bases)
        }
        if more <= names:
            return names
        names |= more


def interpolated_ids(name: str, tree: ast.Module, errors: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _called_name(node) not in errors | ALSO_MESSAGES:
            continue
        messages = node.args[:1] + [k.value for k in node.keywords if k.arg == "message"]
        for message in messages:
            for part in ast.walk(message):
                if not isinstance(part, ast.FormattedValue):
                    continue
                named = [
                    n
                    for n in _identifiers(part.value)
                    if ID_NAME.match(n) and n not in NOT_INTERNAL
                ]
                found.extend(f"{name}:{node.lineno}: {{{ast.unparse(part.value)}}}" for _ in named)
    return found


def test_no_error_message_interpolates_an_internal_id() -> None:
    trees = list(parsed())
    errors = error_classes(trees)

    found = [hit for name, tree in trees for hit in interpolated_ids(name, tree, errors)]

    assert {"NotFound", "HoldNotActive", "PeriodClosed", "MemberNotLinked"} <= errors
    assert found == [], (
        "name the object with a placeholder and a Ref (exchange.kit.errors) instead: "
        + ", ".join(found)
    )


def test_the_walk_catches_what_it_looks_for() -> None:
    source = """
class LedgerTrouble(DomainError): ...
class Deeper(LedgerTrouble): ...
def f(hold_id, run, issuer, client_id, name):
    raise Deeper(f"hold {hold_id} is gone")
    raise NotFound(message=f"run {run.id} and {str(issuer)}")
    raise GraphQLError(f"{run.member_ids}")
    raise Deeper("hold {hold} is gone", refs={"hold": Ref(Kind.HOLD, hold_id)})
    raise Deeper(f"client {client_id} and {name}")
    print(f"{hold_id}")
"""
    tree = ast.parse(source)
    errors = error_classes([("example.py", tree), *parsed()])

    found = interpolated_ids("example.py", tree, errors)

    assert {"LedgerTrouble", "Deeper"} <= errors
    assert found == [
        "example.py:5: {hold_id}",
        "example.py:6: {run.id}",
        "example.py:6: {str(issuer)}",
        "example.py:7: {run.member_ids}",
    ]


def test_each_edge_renders_a_reference_its_own_way() -> None:
    error = NotFound(
        "hold {hold} of {member} is gone; {other} stays",
        refs={"hold": Ref(Kind.HOLD, 2), "member": Ref(Kind.MEMBER, 17)},
    )

    api = error.render(ids.of_ref)

    hold, member = ids.encode("Hold", 2), ids.encode("Member", 17)
    assert api == f"hold {hold} of {member} is gone; {{other}} stays"
    assert error.message == error.render(plain) == "hold 2 of 17 is gone; {other} stays"
    assert str(error) == error.message  # logs and the CLI read the numbers


def test_a_reference_the_message_does_not_name_is_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        DomainError("hold is gone", refs={"hold": Ref(Kind.HOLD, 2)})


def test_every_kind_renders_as_a_node_id() -> None:
    for kind in Kind:
        assert ids.decode(ids.of_ref(Ref(kind, 7))) == (ids.NODE_TYPES[kind], 7)
