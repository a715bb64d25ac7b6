"""Data protection: rebinding, deleting or changing the user's variables in place, and what undo can restore."""

from __future__ import annotations

import ast
import numbers
import types
from typing import Any

from .nodes import _Lazy, _MISSING, _chain_root, _inplace, _kw
from .rules import (
    ARG_MUTATORS, _ALL_MUT, _DEQUE_MUT, _DICT_MUT, _ESTIMATOR_MUT, _GENERIC_MUT, _LIST_MUT, _NUMPY_MUT,
    _PANDAS_MUT, _SET_MUT,
)


# Data the user may keep in plain sight: a loop reusing ``i`` is fine.
SHORT_STRING = 100
#: Objects bigger than this are not copied for undo (see ``undoable``).
UNDO_MAX_BYTES = 512 * 2**20


def _changed_roots(func: ast.AST) -> set[str]:
    """Names whose objects a function body changes in place (item/attribute stores, mutator calls)."""
    out: set[str] = set()
    for sub in ast.walk(func):
        t = type(sub)
        if (t is ast.Subscript or t is ast.Attribute) and type(sub.ctx) is not ast.Load:
            root = _chain_root(sub)
        elif t is ast.Call and type(sub.func) is ast.Attribute and (sub.func.attr in _ALL_MUT or _inplace(sub)):
            root = _chain_root(sub.func.value)
        else:
            continue
        if root:
            out.add(root)
    return out


def _free_value(value: Any) -> bool:
    """Plain numbers, booleans, None and short strings are not data to protect."""
    if value is None or isinstance(value, (bool, numbers.Number)):
        return True
    if isinstance(value, (str, bytes)) and len(value) <= SHORT_STRING:
        return True
    return False


def _immutable(value: Any) -> bool:
    return isinstance(value, (str, bytes, tuple, frozenset, numbers.Number, type(None)))


def _describe(value: Any) -> str:
    type_name = type(value).__name__
    try:
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
            return f"{type_name} {' x '.join(map(str, shape))}"
        return f"{type_name} of {len(value)}"
    except Exception:  # noqa: BLE001 - a description only
        return type_name


def _mutators_for(value: Any, root_value: Any) -> set[str]:
    """The methods that change ``value`` in place (None: a sub-object of ``root_value``)."""
    target = value if value is not None else root_value
    module = type(target).__module__ or ""
    if module.startswith("pandas"):
        return _PANDAS_MUT
    if module.startswith("numpy") and value is not None:
        return _NUMPY_MUT
    if module.startswith(("polars", "pyarrow")):
        return {"insert_column", "replace_column", "extend", "set_sorted"} if value is not None else set()
    if value is None:
        return _GENERIC_MUT - {"fit", "partial_fit", "set_params", "fit_transform", "fit_predict", "set_output"}
    if isinstance(value, list):
        return _LIST_MUT
    if isinstance(value, dict):
        return _DICT_MUT
    if isinstance(value, (set,)):
        return _SET_MUT
    if type(value).__name__ == "deque":
        return _DEQUE_MUT
    if callable(getattr(type(value), "get_params", None)) and callable(getattr(type(value), "fit", None)):
        return _ESTIMATOR_MUT
    return _GENERIC_MUT


def undoable(value: Any, max_bytes: int | None = None) -> tuple[bool, str]:
    """Can an undo restore ``value`` after an in-place change, from a copy taken before the action?

    Yes for DataFrames, Series, arrays and built-in containers up to ``max_bytes`` (default
    ``UNDO_MAX_BYTES``); no for
    other objects (the guard cannot tell whether a copy would be faithful: models, figures,
    connections, files). The undo system should use the same predicate (``GuardContext.can_undo``).
    """
    module = type(value).__module__ or ""
    size = None
    try:
        if module.startswith("pandas") and hasattr(value, "memory_usage"):
            usage = value.memory_usage(deep=False)
            size = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        elif module.startswith("numpy") and hasattr(value, "nbytes"):
            size = int(value.nbytes)
        elif isinstance(value, (list, dict, set, bytearray)) or type(value).__name__ in ("deque", "defaultdict",
                                                                                         "OrderedDict", "Counter"):
            size = len(value) * 64
    except Exception:  # noqa: BLE001 - an estimate only
        size = None
    if size is None:
        return False, f"a {type(value).__name__} is not copied for undo"
    limit = UNDO_MAX_BYTES if max_bytes is None else max_bytes
    if size > limit:
        return False, f"it is too big to copy ({_size(size)}; undo copies up to {_size(limit)})"
    if module.startswith("numpy") and getattr(value, "base", None) is not None:
        return False, "it is a view into another array"
    return True, ""


def _size(n: int) -> str:
    return f"{n // 2**20:,} MB" if n >= 2**20 else f"{n:,} bytes"


def users_data(name: str, context: Any) -> tuple[bool, str]:
    """Is ``name`` the user's data in ``context`` (a ``GuardContext``)? With a short description (why).

    The guard asks before code rebinds or changes such a name; the data watch
    (``smol_magic.safety.watch``) checks after an action that none of it changed unapproved.
    """
    value = context.namespace.get(name, _MISSING)
    if name in context.protected:
        return True, "protected with --protect" + (f"; {_describe(value)}" if value is not _MISSING else "")
    if value is _MISSING or name in context.agent_names or name.startswith("_"):
        return False, ""
    if name in context.hidden:
        return False, ""
    if _free_value(value):
        return False, ""
    return True, _describe(value)


class DataRules:
    """The user's data: which names are protected, and stores and mutations that reach them.

    A part of the checker (``checker._Guard``).
    """

    # -- data protection ------------------------------------------------------------------------

    def protected(self, name: str) -> tuple[bool, str]:
        """Is ``name`` the user's data, which agent code may not rebind or change without asking?"""
        cached = self._protected_cache.get(name)
        if cached is not None:
            return cached
        result = self._protected(name)
        self._protected_cache[name] = result
        return result

    def _protected(self, name: str) -> tuple[bool, str]:
        return users_data(name, self.context) if self.context is not None else (False, "")

    def store_name(self, node: ast.AST, name: str, target: ast.AST | None, delete: bool = False) -> None:
        """``name`` is bound (or deleted) by the code."""
        if self.context is None or (len(self.scopes) > 1 and (not self.binds_module_name(name) or self.is_local(name))):
            return  # (at the module level a name binds in the user's namespace and is nobody's local)
        if name in self.context.hidden and name != "_":
            self.deny(node, f"{'deletes' if delete else 'rebinds'} {name!r}, which belongs to the agent or to IPython",
                      "use a new name")
            return
        if name not in self.ns and name not in self.context.protected:
            return  # a new name (the usual store): nobody's data, as users_data() would answer
        protected, why = self.protected(name)
        if protected:
            verb = "deletes" if delete else "rebinds"
            self.ask(node, f"{verb} the user's variable {name!r} ({why})", self.data_capability(name),
                     f"store your result under a new name, e.g. {name}_2 = ...")

    def data_capability(self, name: str) -> str | None:
        """'mutate_data', or None for a name protected with --protect: only a person may approve that."""
        return None if self.context is not None and name in self.context.protected else "mutate_data"

    def store_target(self, target: ast.AST, delete: bool) -> None:
        """An attribute or item of something is assigned or deleted."""
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            ref = self.ref(target.value)
            if ref is not None and ref.kind == "module":
                self.ask(target, f"{'deletes' if delete else 'replaces'} {ref.name}.{target.attr} for the whole "
                                 "session (monkeypatching a module)", "mutate_data",
                         "define your own function under a new name instead")
                return
        how = ("deletes an item of" if delete else "assigns an item of") if isinstance(target, ast.Subscript) else \
            ("deletes an attribute of" if delete else "sets an attribute of")
        self.mutation_target(target, target, _Lazy(lambda: f"{how} {self.snippet(target, 40)}"), strip=True)

    def mutation_target(self, node: ast.AST, expr: ast.AST, what: "str | _Lazy", strip: bool = False) -> None:
        if self.context is None:
            return
        chain = expr.value if strip and isinstance(expr, (ast.Attribute, ast.Subscript)) else expr
        for root in self.roots(chain):
            value = self.ns.get(root, _MISSING)
            if isinstance(value, types.ModuleType):
                continue  # module settings (pd.options..., plt.rcParams[...]) are not the user's data
            protected, why = self.protected(root)
            if protected:
                self.mutation(node, root, what)

    def mutation(self, node: ast.AST, name: str, how: "str | _Lazy") -> None:
        """``how`` changes the user's variable ``name`` in place."""
        value = self.ns.get(name, _MISSING)
        message = f"changes the user's variable {name!r} ({self.protected(name)[1]}) in place: {how}"
        can_undo = (self.context.can_undo if self.context and self.context.can_undo else undoable)
        ok, why = can_undo(value) if value is not _MISSING else (False, "it does not exist yet")
        if not ok:
            message += f"; undo cannot restore it ({why})"
        self.ask(node, message, self.data_capability(name),
                 f"work on a copy under a new name, e.g. {name}_2 = {name}.copy()", irreversible=not ok)

    def roots(self, expr: ast.AST, depth: int = 0) -> set[str]:
        """The user's variables an Attribute/Subscript chain (or an alias of one) points into."""
        if depth > 6:
            return set()
        while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return set()
        name = expr.id
        if self.is_local(name):
            local_aliases: set[str] = set()
            if self.comp_iters and name in self.comp_iters[-1]:
                local_aliases |= self.roots(self.comp_iters[-1][name], depth + 1)
            return local_aliases
        out: set[str] = set()
        bound = self.code_bindings(name)
        if bound is None:
            out.add(name)
        else:
            for value in bound:
                if value[0] == "expr" and isinstance(value[1], (ast.Name, ast.Attribute, ast.Subscript)):
                    out |= self.roots(value[1], depth + 1)
                elif value[0] == "iter" and isinstance(value[1], (ast.Name, ast.Attribute, ast.Subscript)):
                    out |= self.roots(value[1], depth + 1)
        return out

    def mutating_call(self, node: ast.Call, name: str, recv: ast.AST | None) -> None:
        if self.context is None:
            return
        if recv is not None:
            inplace = _inplace(node)
            roots = self.roots(recv) if (inplace or name in _GENERIC_MUT or name in _PANDAS_MUT) else set()
            for root in roots:
                value = self.ns.get(root, _MISSING)
                if isinstance(value, types.ModuleType) or value is _MISSING:
                    continue
                protected, why = self.protected(root)
                if not protected:
                    continue
                direct = isinstance(recv, ast.Name) and recv.id == root
                if inplace:
                    self.mutation(node, root, f"{self.snippet(node.func)}(..., inplace=True)")
                elif name in _mutators_for(value if direct else None, value):
                    self.mutation(node, root, f"{self.snippet(node.func)}()")
        if name in ARG_MUTATORS and name not in ("setattr", "delattr") and node.args and (
                name != "put" or recv is None or self.ref(recv) is not None):
            if name == "at" and not (recv is not None and isinstance(recv, ast.Attribute)):
                return
            self.mutation_target(node, node.args[0], _Lazy(lambda: self.snippet(node, 50)))
        out = _kw(node, "out")
        if out is not None:
            self.mutation_target(node, out, _Lazy(lambda: f"{self.snippet(node.func)}(..., out={self.snippet(out, 30)})"))
