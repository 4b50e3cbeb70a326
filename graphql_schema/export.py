"""Write the schema to graphql_schema/schema.graphql: `python -m graphql_schema.export`.
CI fails when the committed file differs from the code."""

from __future__ import annotations

from pathlib import Path

from graphql_schema.schema import schema

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")


def render() -> str:
    return schema.as_str() + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(render())
    print(f"wrote {SCHEMA_FILE}")
