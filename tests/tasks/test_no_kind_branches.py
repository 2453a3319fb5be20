"""Outside `tasks/`, no code branches on a task kind's or a built-in task's name, and no table is keyed by
kind names: what differs between kinds is asked of the kind (tasks/kinds/), so a new kind is one module
plus one registration and never falls silently through a method's generic branch."""

from __future__ import annotations

import ast
from pathlib import Path

import fewforge
from fewforge.tasks.builtin import BUILTIN_TASKS
from fewforge.tasks.kinds import KINDS

PACKAGE = Path(fewforge.__file__).parent


def _strings(node: ast.AST) -> list[str]:
    """The string constants of a comparison operand (a literal, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for element in node.elts for s in _strings(element)]
    return []


def branches(source: str, names: set[str], kinds: set[str]) -> list[tuple[int, str]]:
    """(line, name) for every comparison against one of `names`, and every dict literal keyed by a kind."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [(node.lineno, s) for s in _strings(operand) if s in names]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, s) for key in node.keys if key is not None for s in _strings(key) if s in kinds]
    return found


def test_the_check_sees_comparisons_memberships_and_kind_keyed_tables():
    names, kinds = {"pair", "rte"}, {"pair"}
    source = (
        "if task.kind == 'pair': pass\n"
        "x = task.name in ('sst2', 'rte')\n"
        "TABLE = {'pair': 1}\n"
        "y = task.kind == other\n"
        "z = {'label': 'pair'}\n"
    )
    assert branches(source, names, kinds) == [(1, "pair"), (2, "rte"), (3, "pair")]


def test_no_kind_or_task_name_branch_outside_tasks():
    kinds = set(KINDS)
    names = kinds | set(BUILTIN_TASKS)
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "tasks" not in path.relative_to(PACKAGE).parts[:1]
        for line, name in branches(path.read_text(encoding="utf-8"), names, kinds)
    ]
    assert not found, "branches on kind or task names (ask the kind instead, tasks/kinds/): " + "; ".join(found)
