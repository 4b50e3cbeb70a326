"""Every type, field, argument, input field and enum value of the schema says what it is:
GraphiQL's documentation explorer and generated clients show these descriptions to a
partner's engineer. Read by introspection over HTTP, as they read it."""

from __future__ import annotations

from typing import Any

import httpx

from exchange.kit.db import Database
from tests.graphql.conftest import new_partner

INTROSPECTION = """{ __schema { types { kind name description
  fields(includeDeprecated: true) { name description args { name description } }
  inputFields { name description }
  enumValues(includeDeprecated: true) { name description } } } }"""
#: GraphQL's own scalars: the specification describes them.
BUILT_IN = {"String", "Int", "Float", "Boolean", "ID"}


def undocumented(types: list[dict[str, Any]]) -> list[str]:
    """Every type, field, argument, input field and enum value without a description,
    by path (``Type``, ``Type.field``, ``Type.field(argument)``, ``Enum.VALUE``)."""
    missing = []
    for kind in types:
        name = kind["name"]
        if name.startswith("__") or name in BUILT_IN:
            continue
        if not (kind["description"] or "").strip():
            missing.append(name)
        for field in kind["fields"] or []:
            if not (field["description"] or "").strip():
                missing.append(f"{name}.{field['name']}")
            missing.extend(
                f"{name}.{field['name']}({argument['name']})"
                for argument in field["args"]
                if not (argument["description"] or "").strip()
            )
        for member in (kind["inputFields"] or []) + (kind["enumValues"] or []):
            if not (member["description"] or "").strip():
                missing.append(f"{name}.{member['name']}")
    return missing


async def test_every_part_of_the_schema_has_a_description(
    db: Database, api: httpx.AsyncClient
) -> None:
    partner = await new_partner(db, api)

    result = await partner.gql(INTROSPECTION)

    assert "errors" not in result, result
    types = result["data"]["__schema"]["types"]
    assert {"Query", "Mutation", "Hold", "UserError", "ErrorCode"} <= {t["name"] for t in types}
    missing = undocumented(types)
    assert missing == [], f"{len(missing)} without a description: {', '.join(missing)}"


def test_the_walk_sees_each_part_it_checks() -> None:
    types = [
        {"kind": "OBJECT", "name": "__Type", "description": None, "fields": [],
         "inputFields": None, "enumValues": None},
        {"kind": "SCALAR", "name": "String", "description": None, "fields": None,
         "inputFields": None, "enumValues": None},
        {"kind": "OBJECT", "name": "Hold", "description": " ", "inputFields": None,
         "enumValues": None, "fields": [
             {"name": "id", "description": "Its ID.", "args": []},
             {"name": "points", "description": "", "args": [
                 {"name": "unit", "description": None}, {"name": "ok", "description": "x"}]},
         ]},
        {"kind": "INPUT_OBJECT", "name": "HoldInput", "description": "In.", "fields": None,
         "enumValues": None, "inputFields": [{"name": "points", "description": None}]},
        {"kind": "ENUM", "name": "HoldStatus", "description": "Status.", "fields": None,
         "inputFields": None, "enumValues": [{"name": "ACTIVE", "description": None},
                                             {"name": "CAPTURED", "description": "Done."}]},
    ]  # fmt: skip

    assert undocumented(types) == [
        "Hold",
        "Hold.points",
        "Hold.points(unit)",
        "HoldInput.points",
        "HoldStatus.ACTIVE",
    ]
