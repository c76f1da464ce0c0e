"""Imports run one way (docs/architecture.md): ``python -m pytest tests/test_architecture.py``.

Every import of a ``mailer`` module is read with ``ast`` (those inside functions
too: a lazy import is still a dependency), and checked against the layer list
below, lowest first. A module may import its own package and any lower layer,
never a higher one; and no chain of imports may lead back to where it started.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mailer"

# Lowest first; one entry per layer. Keep in step with docs/architecture.md.
LAYERS: list[tuple[str, ...]] = [
    ("mailer.errors",),
    ("mailer.config", "mailer.models", "mailer.atomicfile", "mailer.templating"),
    ("mailer.keys",),  # keys derived per purpose from the secrets: the store's address hash, tokens
    ("mailer.issue",),
    ("mailer.store",),
    ("mailer.migrations",),  # Alembic's scripts read the store's schema
    ("mailer.tokens",),
    ("mailer.aws",),
    ("mailer.sending",),
    ("mailer.feedback",),
    ("mailer.web",),
    ("mailer.cli",),
    ("mailer.__main__", "mailer.lambda_entry"),  # entry points: `python -m mailer`, the Lambda function
]
SQL_OWNERS = ("mailer.store", "mailer.migrations")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def imports(name: str) -> frozenset[str]:
    """Every module (and third-party top-level name) ``name`` imports, anywhere in its body."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules() else base)
    return frozenset(found)


def layer(name: str) -> tuple[int, str]:
    """(layer index, unit) of a mailer module: the unit is the package or module that layer lists."""
    for index, units in enumerate(LAYERS):
        for unit in units:
            if name == unit or name.startswith(unit + "."):
                return index, unit
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def mailer_imports(name: str) -> set[str]:
    return {m for m in imports(name) if m == "mailer" or m.startswith("mailer.")}


def test_every_module_has_a_layer():
    for name in modules():
        if name != "mailer":
            layer(name)


def test_imports_run_one_way():
    wrong = []
    for name in modules():
        if name == "mailer":
            continue
        (mine, unit) = layer(name)
        for target in mailer_imports(name):
            (theirs, their_unit) = layer(target)
            if theirs > mine or (theirs == mine and their_unit != unit):
                wrong.append(f"{name} imports {target} ({their_unit} is not below {unit})")
    assert wrong == []


def test_no_import_cycles():
    graph = {name: {t for t in mailer_imports(name) if t in modules()} for name in modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_one_boto3_client_builder():
    users = {name for name in modules() if any(m.split(".")[0] == "boto3" for m in imports(name))}
    assert users == {"mailer.aws.client"}


def sql_users() -> set[str]:
    return {name for name in modules() if not name.startswith(SQL_OWNERS)
            and any(m.split(".")[0] == "sqlalchemy" for m in imports(name))}


def test_only_the_store_imports_sqlalchemy():
    assert sql_users() == set()


def test_no_private_store_method_is_called_from_outside_the_store():
    # The store's transactions (_read/_write/_tx) carry the SQLite write lock and the error mapping.
    private = re.compile(r"\.(?:_read|_write|_tx|_join|_insert|_find)\(")
    callers = {str(path.relative_to(ROOT)) for path in (ROOT / "mailer").rglob("*.py")
               if not path.is_relative_to(ROOT / "mailer" / "store") and private.search(path.read_text())}
    assert callers == set()
