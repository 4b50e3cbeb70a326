"""docs/api.md's table of which scope each root field needs is the permission its use
cases declare (``@use_case(partner=..., operator=..., member=...)``), for every root
field of the schema: a new field, a changed scope or a field that calls another use case
fails this until the table says so.

Which use cases a field calls is read from its resolver's source: every use case it
names, and those of the helpers in ``graphql_schema`` it calls (``transactions_page``,
``load_wallet``, ``_node``), as the code is written. A field that names none (``viewer``)
needs no scope. Nested fields (a payload's ``wallet``) are their own calls and not counted.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FunctionType, MethodType
from typing import Any

from exchange.usecases.core import UseCase
from graphql_schema.schema import schema
from partners.principal import PrincipalKind

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADING = "### Which scope each call needs"
ROOTS = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}
KINDS = (PrincipalKind.PARTNER, PrincipalKind.OPERATOR, PrincipalKind.MEMBER)
REFUSED, NO_SCOPE = "—", "none"


def _function(value: Any) -> FunctionType | None:
    if isinstance(value, classmethod | staticmethod | MethodType):
        value = value.__func__
    return value if isinstance(value, FunctionType) else None


def _named(node: ast.AST, names: dict[str, Any]) -> Any:
    """What a name or a dotted name in a function's source is, in its module."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _named(node.value, names)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def use_cases_of(function: Callable[..., Any], seen: set[Callable[..., Any]]) -> dict[str, Any]:
    """The use cases ``function`` names, and those of the ``graphql_schema`` functions it
    names, by use-case name."""
    seen.add(function)
    names = function.__globals__  # type: ignore[attr-defined]
    found: dict[str, UseCase[Any, Any]] = {}
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        value = _named(node, names)
        if isinstance(value, UseCase):
            found[value.name] = value
        helper = _function(value)
        if helper and helper.__module__.startswith("graphql_schema") and helper not in seen:
            found.update(use_cases_of(helper, seen))
    return found


def _cell(kind: PrincipalKind, use_cases: Iterable[UseCase[Any, Any]], any_of: bool) -> str:
    """What a kind of caller needs to call the field: REFUSED if any of its use cases
    refuses that kind (or, for a field that calls one use case per type of object,
    ``any_of``, if all of them do), else each scope the accepting ones ask for (NO_SCOPE
    for none), in order."""
    permits = [use_case.permits for use_case in use_cases]
    refused = [kind not in permit for permit in permits]
    if (all(refused) and refused) if any_of else any(refused):
        return REFUSED
    permits = [permit for permit in permits if kind in permit]
    scopes = sorted({permit[kind] for permit in permits}) or [""]
    return " or ".join(f"`{scope}`" if scope else NO_SCOPE for scope in scopes)


PER_TYPE = {"node"}  # fields that resolve each type of object by its own use case


def declared_table() -> dict[tuple[str, str], tuple[str, ...]]:
    """(field, operation) -> the partner, operator and member cells, from the code."""
    rows = {}
    for root, operation in ROOTS.items():
        definition = schema.get_type_by_name(root)
        assert definition is not None
        for field in definition.fields:  # type: ignore[union-attr]
            name = schema.config.name_converter.get_graphql_name(field)
            resolver = field.base_resolver
            use_cases = use_cases_of(resolver.wrapped_func, set()) if resolver else {}
            assert use_cases or name == "viewer", f"{name} calls no use case we can see"
            rows[(f"`{name}`", operation)] = tuple(
                _cell(kind, use_cases.values(), any_of=name in PER_TYPE) for kind in KINDS
            )
    return rows


def documented_table() -> dict[tuple[str, str], tuple[str, ...]]:
    """The table under HEADING in docs/api.md: field | operation | partner | operator |
    member."""
    section = API_DOC.read_text().split(HEADING, 1)
    assert len(section) == 2, f"docs/api.md lost its heading {HEADING!r}"
    lines = re.findall(r"^\|.*\|$", section[1].split("\n\n#", 1)[0], flags=re.MULTILINE)
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "field", "operation", "partner token", "operator token", "member token"
    ]  # fmt: skip
    rows: dict[tuple[str, str], tuple[str, ...]] = {}
    for line in lines[2:]:
        field, operation, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        assert (field, operation) not in rows, f"{field} is in the table twice"
        rows[(field, operation)] = tuple(cells)
    return rows


def test_the_scope_table_in_the_api_guide_is_what_the_use_cases_declare() -> None:
    declared, documented = declared_table(), documented_table()

    assert sorted(set(declared) - set(documented)) == [], "fields missing from the table"
    assert sorted(set(documented) - set(declared)) == [], "the table names fields we lack"
    wrong = {
        field: {"documented": documented[field], "declared": cells}
        for field, cells in declared.items()
        if documented[field] != cells
    }
    assert wrong == {}


def test_the_table_reads_scopes_from_the_use_case_each_field_calls() -> None:
    declared = declared_table()

    assert declared[("`transferPoints`", "mutation")] == (REFUSED, REFUSED, "`wallet:transfer`")
    assert declared[("`earnPoints`", "mutation")] == ("`points:earn`", REFUSED, REFUSED)
    assert declared[("`transactions`", "query")] == (
        "`transactions:read`", "`ledger:read:all`", "`wallet:read`"
    )  # fmt: skip
    assert declared[("`walletUpdated`", "subscription")] == (REFUSED, REFUSED, "`wallet:read`")
    assert declared[("`viewer`", "query")] == (NO_SCOPE, NO_SCOPE, NO_SCOPE)
