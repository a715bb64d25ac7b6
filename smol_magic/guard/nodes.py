"""Small helpers the guard's parts share: AST accessors, a sentinel, lazy messages, namespace lookups."""

from __future__ import annotations

import ast
import types
from typing import Any, Callable, Mapping


_MISSING = object()


def _is_builtin_here(ns: Mapping[str, Any], name: str) -> bool:
    """Does ``name`` mean the builtin (or IPython's object) here, not a variable of the user's?"""
    return _is_data(ns, name) is False


def _is_data(ns: Mapping[str, Any], name: str) -> bool:
    value = ns.get(name, _MISSING)
    return value is not _MISSING and not callable(value) and not isinstance(value, types.ModuleType)


def _kw(node: ast.Call, name: str) -> ast.AST | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _inplace(node: ast.Call) -> bool:
    value = _kw(node, "inplace")
    return value is not None and not (isinstance(value, ast.Constant) and not value.value)


def _callee_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _chain_root(expr: ast.AST) -> str | None:
    while isinstance(expr, (ast.Attribute, ast.Subscript)):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _target_names(target: ast.AST, out: set[str]) -> None:
    if isinstance(target, ast.Name):
        out.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_names(elt, out)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, out)


class _Lazy:
    """A message part computed only if a finding needs it (ast.unparse is slow)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], str]):
        self.fn = fn

    def __format__(self, spec: str) -> str:
        return format(self.fn(), spec)

    __str__ = lambda self: self.fn()  # noqa: E731
