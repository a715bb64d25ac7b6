"""What a name or attribute chain denotes: a module, or a live object reached through modules."""

from __future__ import annotations

import ast
import builtins
import os
import sys
import types
from dataclasses import dataclass
from typing import Any

from .nodes import _MISSING


@dataclass(slots=True)
class _Ref:
    """What an expression denotes, when the guard can tell: a module, or a live object."""

    kind: str  # module | object
    # a module: its dotted name (what the rules judge). An object: the dotted path it was reached by
    # ("module.attr", "builtins.len"), or "" for a notebook variable; no rule reads an object's name.
    name: str = ""
    obj: Any = _MISSING


def _origin(value: Any) -> str:
    module, name = _str_attr(value, "__module__"), _str_attr(value, "__name__")
    return f"{module}.{name}" if module and name else ""


def _str_attr(value: Any, name: str) -> str | None:
    """A string attribute of a live object, or None: never trust arbitrary objects' attributes
    (a polars ``pl.col.__name__`` is an expression; a property may raise)."""
    try:
        got = getattr(value, name, None)
    except Exception:  # noqa: BLE001 - any object may raise anything
        return None
    return got if type(got) is str else None


def _name_ref(ns: Any, name: str) -> _Ref | None:
    """What a name the code does not bind denotes: the notebook's variable, or a builtin."""
    value = ns.get(name, _MISSING)
    if value is _MISSING:
        value = getattr(builtins, name, _MISSING)
        return _Ref("object", "builtins." + name, value) if value is not _MISSING else None
    if isinstance(value, types.ModuleType):
        return _Ref("module", _str_attr(value, "__name__") or name, value)
    # No name: an object's name is never judged, and reading ``__name__`` off the user's objects is not free
    # (a DataFrame looks it up among its columns).
    return _Ref("object", "", value)


def _attr_ref(base: _Ref, attr: str) -> _Ref:
    """``base.attr`` where ``base`` is a module: a module, a live object, or (unknown) a submodule name."""
    dotted = f"{base.name}.{attr}"
    mod = base.obj
    if mod is not _MISSING and mod is not None:
        try:
            value = vars(mod).get(attr, _MISSING)
        except TypeError:
            value = _MISSING
        if value is _MISSING:
            sub = sys.modules.get(dotted)
            if sub is not None:
                return _Ref("module", dotted, sub)
            if _is_submodule(base.name, attr, mod):
                return _Ref("module", dotted)
            return _Ref("object", dotted)
        if isinstance(value, types.ModuleType):
            return _Ref("module", _str_attr(value, "__name__") or dotted, value)
        return _Ref("object", dotted, value)
    if _is_submodule(base.name, attr):
        return _Ref("module", dotted, sys.modules.get(dotted, _MISSING))
    return _Ref("object", dotted)


_SUBMODULE_CACHE: dict[str, bool] = {}
_INSTALLED_CACHE: dict[str, bool] = {}


def _installed(module: str) -> bool:
    """Is the top-level package of ``module`` installed? Answered from the files, without importing it.

    A module that is not installed holds nothing: importing it fails with ModuleNotFoundError,
    which is the truth to tell, rather than "it looks like a forbidden module".
    """
    root = module.split(".")[0]
    if root in sys.modules:
        return True
    got = _INSTALLED_CACHE.get(root)
    if got is None:
        import importlib.util

        try:
            got = importlib.util.find_spec(root) is not None  # a top-level lookup imports nothing
        except (ImportError, ValueError):
            got = False
        _INSTALLED_CACHE[root] = got
    return got


def _is_submodule(module: str, name: str, mod: Any = None) -> bool:
    """Is ``module.name`` a submodule? Answered from the files, without importing anything."""
    dotted = f"{module}.{name}"
    if dotted in sys.modules:
        return True
    cached = _SUBMODULE_CACHE.get(dotted)
    if cached is not None:
        return cached
    result = False
    try:
        if mod is None or mod is _MISSING:
            mod = sys.modules.get(module)
        locations: list[str] = []
        if mod is not None:
            locations = list(getattr(mod, "__path__", []) or [])
        else:
            import importlib.util

            root = module.split(".")[0]
            spec = importlib.util.find_spec(root)  # a top-level lookup imports nothing
            if spec is not None and spec.submodule_search_locations:
                locations = list(spec.submodule_search_locations)
                for part in module.split(".")[1:]:
                    locations = [os.path.join(loc, part) for loc in locations if os.path.isdir(os.path.join(loc, part))]
        for loc in locations:
            if os.path.isdir(os.path.join(loc, name)):
                result = True
                break
            try:
                entries = os.listdir(loc)
            except OSError:
                continue
            if any(e == name + ".py" or (e.startswith(name + ".") and e.endswith((".so", ".pyd"))) for e in entries):
                result = True
                break
    except (ImportError, ValueError, OSError):
        result = False
    _SUBMODULE_CACHE[dotted] = result
    return result


class Resolution:
    """Resolution of names and attribute chains to modules and live objects (cached per node).

    A part of the checker (``checker._Guard``).
    """

    def ref(self, node: ast.AST, depth: int = 0) -> _Ref | None:
        """What a Name/Attribute chain denotes when it is a module or an object reached through modules."""
        t = type(node)
        if t is not ast.Name and t is not ast.Attribute:
            return None  # a call's result, an item, a literal: no module, no object the guard can name
        cache = self._ref_cache
        result = cache.get(node, _MISSING)
        if result is _MISSING:
            result = cache[node] = self._ref(node, depth)
        return result

    def _ref(self, node: ast.AST, depth: int) -> _Ref | None:
        if depth > 8:
            return None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is not None:
                for value in bound:
                    if value[0] == "import":
                        return _Ref("module", value[1], sys.modules.get(value[1], _MISSING))
                    if value[0] == "from":
                        return self._from_ref(value[1], value[2])
                    if value[0] == "expr" and isinstance(value[1], (ast.Name, ast.Attribute)):
                        inner = self.ref(value[1], depth + 1)
                        if inner is not None:
                            return inner
                return None
            # Not bound by the code: the notebook's variable or a builtin, the same wherever it is named.
            found = self._name_refs.get(node.id, _MISSING)
            if found is _MISSING:
                found = self._name_refs[node.id] = _name_ref(self.ns, node.id)
            return found
        if isinstance(node, ast.Attribute):
            base = self.ref(node.value, depth + 1)
            if base is None or base.kind != "module":
                return None
            return _attr_ref(base, node.attr)
        return None

    def _from_ref(self, module: str, name: str) -> _Ref:
        mod = sys.modules.get(module)
        if mod is None:
            return _Ref("module" if _is_submodule(module, name) else "object", f"{module}.{name}")
        return _attr_ref(_Ref("module", module, mod), name)
