"""The shape of the production code (STYLE.md point 7): no bare ``assert`` (it vanishes
under ``python -O``; use ``exchange.kit.invariant``) and no function longer than 70
lines, counted from its ``def`` line to the last line of its body. Migrations'
versions are generated DDL and are left out."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["exchange", "partners", "settlement", "graphql_schema"]
EXCLUDED = [ROOT / "exchange" / "migrations" / "versions"]
MAX_FUNCTION_LINES = 70


def production_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not any(path.is_relative_to(excluded) for excluded in EXCLUDED):
                yield path


def parsed() -> Iterator[tuple[str, ast.Module]]:
    for path in production_files():
        name = path.relative_to(ROOT).as_posix()
        yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def bare_asserts(name: str, tree: ast.Module) -> list[str]:
    return [f"{name}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def long_functions(name: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.name}:{length}")
    return found


def test_the_check_sees_every_package() -> None:
    names = {path.relative_to(ROOT).parts[0] for path in production_files()}
    assert names == set(PACKAGES)
    assert not any("versions" in path.parts for path in production_files())


def test_production_code_has_no_bare_assert() -> None:
    found = [hit for name, tree in parsed() for hit in bare_asserts(name, tree)]
    assert found == [], "use exchange.kit.invariant.invariant() or present(): " + ", ".join(found)


def test_no_production_function_is_longer_than_70_lines() -> None:
    found = [hit for name, tree in parsed() for hit in long_functions(name, tree)]
    assert found == [], f"split these (file:function:lines): {', '.join(found)}"


def test_the_checks_catch_what_they_look_for() -> None:
    fits = "def fits():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1)
    too_long = "def too_long():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    asserting = "class C:\n    async def check(self):\n        assert self\n"
    source = "\n".join([fits, too_long, asserting])
    tree = ast.parse(source)

    assert long_functions("example.py", tree) == ["example.py:too_long:71"]
    assert_line = source.splitlines().index("        assert self") + 1
    assert bare_asserts("example.py", tree) == [f"example.py:{assert_line}"]
