"""Which names a piece of code uses, reads and binds (one AST walker for undo, export and setup)."""

from __future__ import annotations

import ast
import builtins
from typing import Sequence

_BUILTINS = frozenset(dir(builtins))


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def used_names(code: str) -> set[str]:
    """Every plain name the code mentions (read, bound or deleted); none when it does not parse."""
    tree = _parse(code)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()


def bound_names(tree: ast.AST) -> set[str]:
    """Names a statement (or module) binds or deletes: assignments, imports, defs and classes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def read_names(codes: Sequence[str]) -> list[str]:
    """Names the code reads before binding them itself: what it needs from the notebook, in order."""
    bound: set[str] = set()
    needed: list[str] = []
    for code in codes:
        tree = _parse(code)
        if tree is None:
            continue
        for statement in tree.body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    if node.id not in bound and node.id not in needed and node.id not in _BUILTINS:
                        needed.append(node.id)
            bound |= bound_names(statement)
    return needed
