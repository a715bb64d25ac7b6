"""Static evaluation: the values strings, collections and paths can have, without running the code."""

from __future__ import annotations

import ast
import io
import itertools
import os
import re
from pathlib import PurePath

from .nodes import _MISSING, _callee_name
from .rules import _PATH_CLASSES, _PATH_RETURNING


def _product(parts: list[set]) -> set | None:
    out = {""}
    for part in parts:
        if len(out) * len(part) > 64:
            return None
        out = {a + b for a in out for b in part}
    return out


class Folding:
    """Constant folding over the AST: strings, collections and paths the code can produce.

    A part of the checker (``checker._Guard``).
    """

    def values(self, node: ast.AST, depth: int = 0) -> set | None:
        """Constant folding: the set of values an expression can have, or None."""
        if depth > 10:
            return None
        t = type(node)
        if t is ast.Constant:
            return {node.value}
        if t is ast.Name:
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, (str, int, float, bool)) or value is None:
                    return {value}
                if isinstance(value, PurePath):
                    return {str(value)}
                return None
            out: set = set()
            for value in bound:
                if value[0] == "expr":
                    got = self.values(value[1], depth + 1)
                elif value[0] == "iter":
                    got = self.elements(value[1], depth + 1)
                else:
                    got = None
                if got is None:
                    return None
                out |= got
            return out if len(out) <= 64 else None
        if t is ast.JoinedStr:
            parts: list[set] = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append({str(part.value)})
                    continue
                got = self.values(part.value, depth + 1)
                spec = self.values(part.format_spec, depth + 1) if part.format_spec is not None else {""}
                if got is None or spec is None or any(re.search(r"\d{4}", str(sp)) for sp in spec):
                    return None
                try:
                    parts.append({format(repr(v) if part.conversion == 114 else str(v) if part.conversion == 115
                                         else ascii(v) if part.conversion == 97 else v, s)
                                  for v in got for s in spec})
                except (ValueError, TypeError):
                    return None
            return _product(parts)
        if t is ast.BinOp:
            left, right = self.values(node.left, depth + 1), self.values(node.right, depth + 1)
            if left is None or right is None or len(left) * len(right) > 64:
                return None
            try:
                if isinstance(node.op, ast.Add):
                    return {a + b for a in left for b in right}
                if isinstance(node.op, ast.Mult):
                    for a in left:
                        for b in right:
                            size = len(a) * b if isinstance(a, str) and isinstance(b, int) else \
                                len(b) * a if isinstance(b, str) and isinstance(a, int) else 0
                            if size > 10_000 or (isinstance(a, int) and isinstance(b, int) and
                                                 max(abs(a), abs(b)) > 10**9):
                                return None  # folding must not build huge values
                    return {a * b for a in left for b in right}
                if isinstance(node.op, ast.Mod) and all(isinstance(a, str) for a in left):
                    return {a % b for a in left for b in right}
            except (TypeError, ValueError, OverflowError, MemoryError):
                return None
            return None
        if t is ast.UnaryOp and isinstance(node.op, (ast.USub, ast.UAdd)):
            got = self.values(node.operand, depth + 1)
            if got is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got):
                return None
            return {-v for v in got} if isinstance(node.op, ast.USub) else got
        if t is ast.IfExp:
            a, b = self.values(node.body, depth + 1), self.values(node.orelse, depth + 1)
            return None if a is None or b is None else a | b
        if t is ast.Subscript:
            base = self.values(node.value, depth + 1)
            if base is None or not all(isinstance(b, str) for b in base):
                return None
            index = node.slice
            try:
                if isinstance(index, ast.Slice):
                    bounds = []
                    for part in (index.lower, index.upper, index.step):
                        if part is None:
                            bounds.append(None)
                            continue
                        got = self.values(part, depth + 1)
                        if got is None or len(got) != 1:
                            return None
                        bounds.append(next(iter(got)))
                    lo, hi, st = bounds
                    return {s[lo:hi:st] for s in base}
                idx = self.values(index, depth + 1)
                if idx is None:
                    return None
                return {s[i] for s in base for i in idx}
            except (TypeError, ValueError, IndexError):
                return None
        if t is ast.Call:
            return self.call_values(node, depth)
        return None

    def call_values(self, node: ast.Call, depth: int) -> set | None:
        func = node.func
        if node.keywords:
            return None
        if isinstance(func, ast.Name) and func.id in ("chr", "str") and func.id not in self.bindings:
            if len(node.args) != 1:
                return {""} if func.id == "str" and not node.args else None
            arg = self.values(node.args[0], depth + 1)
            if arg is None:
                return None
            try:
                return {chr(a) for a in arg} if func.id == "chr" else {str(a) for a in arg}
            except (TypeError, ValueError, OverflowError):
                return None
        if isinstance(func, ast.Attribute):
            base = self.values(func.value, depth + 1)
            if base is None or not all(isinstance(b, str) for b in base):
                return None
            if func.attr == "join" and len(node.args) == 1:
                items = self.elements(node.args[0], depth + 1, ordered=True)
                if items is None:
                    return None
                return {b.join(map(str, seq)) for b in base for seq in items}
            if func.attr in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "casefold",
                             "replace", "removeprefix", "removesuffix", "swapcase"):
                args = [self.values(a, depth + 1) for a in node.args]
                if any(a is None for a in args):
                    return None
                out = set()
                try:
                    for b in base:
                        for combo in itertools.product(*args):
                            out.add(getattr(b, func.attr)(*combo))
                except (TypeError, ValueError, AttributeError, IndexError, KeyError):
                    return None
                return out if len(out) <= 64 else None
        return None

    def elements(self, node: ast.AST, depth: int = 0, ordered: bool = False) -> set | None:
        """The values of the elements of a literal collection (or with ``ordered``, the sequences)."""
        if depth > 10:
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            parts = []
            for elt in node.elts:
                got = self.values(elt, depth + 1)
                if got is None:
                    return None
                parts.append(got)
            if ordered:
                combos = 1
                for p in parts:
                    combos *= len(p)
                if combos > 64:
                    return None
                return set(itertools.product(*parts))
            return set().union(*parts) if parts else set()
        if isinstance(node, ast.Dict) and not ordered:
            return self.elements(ast.Tuple(elts=[k for k in node.keys if k is not None]), depth + 1)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and ordered:
            return None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, (list, tuple, set, frozenset)) and len(value) <= 64 and all(
                        isinstance(v, (str, int, float)) for v in value):
                    return {tuple(value)} if ordered else set(value)
                return None
            out: set = set()
            for value in bound:
                if value[0] != "expr":
                    return None
                got = self.elements(value[1], depth + 1, ordered)
                if got is None:
                    return None
                out |= got
            return out
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "keys", "values", "items") and not ordered:
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" and not ordered:
            args = [self.values(a, depth + 1) for a in node.args]
            if all(a is not None and len(a) == 1 and isinstance(next(iter(a)), int) for a in args) and args:
                rng = range(*(next(iter(a)) for a in args))
                return set(rng) if len(rng) <= 64 else {rng.start}
        return None

    # -- paths ---------------------------------------------------------------------

    def path_kind(self, node: ast.AST, depth: int = 0) -> str | None:
        """'path' (a pathlib object), 'buffer' (in-memory), 'file' (an open file) or None."""
        if depth > 8:
            return None
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name in ("StringIO", "BytesIO"):
                return "buffer"
            if name in _PATH_CLASSES:
                return "path"
            if name in _PATH_RETURNING and isinstance(node.func, ast.Attribute):
                inner = node.func.value  # Path.home(), p.with_suffix('.csv'), (p / 'x').resolve()
                if _callee_name(inner) in _PATH_CLASSES and not isinstance(inner, ast.Call) or \
                        self.path_kind(inner, depth + 1) == "path":
                    return "path"
                return None
            if name == "open":
                return "file"
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return "path" if self.path_kind(node.left, depth + 1) == "path" else None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            return "path" if self.path_kind(node.value, depth + 1) == "path" else None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, PurePath):
                    return "path"
                if isinstance(value, (io.StringIO, io.BytesIO)):
                    return "buffer"
                if isinstance(value, io.IOBase):
                    return "file"
                return None
            kinds = set()
            for value in bound:
                if value[0] == "expr":
                    kinds.add(self.path_kind(value[1], depth + 1))
                elif value[0] == "with":
                    kinds.add(self.path_kind(value[1], depth + 1))
                elif value[0] == "iter":
                    it = value[1]
                    if isinstance(it, ast.Call) and _callee_name(it.func) in ("glob", "rglob", "iterdir") and \
                            isinstance(it.func, ast.Attribute) and self.path_kind(it.func.value, depth + 1) == "path":
                        kinds.add("path")
                    else:
                        kinds.add(None)
                else:
                    kinds.add(None)
            return kinds.pop() if len(kinds) == 1 else None
        return None

    def paths(self, node: ast.AST, depth: int = 0) -> set[str] | None:
        """The paths an expression can name, as strings ('~' for the home directory), or None."""
        if depth > 8:
            return None
        vals = self.values(node, depth + 1)
        if vals is not None:
            return {v for v in vals if isinstance(v, str)} if all(isinstance(v, (str, PurePath)) for v in vals) \
                else None
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name in _PATH_CLASSES and not node.keywords:
                if not node.args:
                    return {"."}
                parts = [self.paths(a, depth + 1) for a in node.args]
                if any(p is None for p in parts):
                    return None
                return {os.path.join(*combo) for combo in itertools.product(*parts)}
            if name == "str" and len(node.args) == 1:
                return self.paths(node.args[0], depth + 1)
            if isinstance(node.func, ast.Attribute):
                inner = node.func.value
                if name == "home":
                    return {"~"}
                if name == "cwd":
                    return {self.root_dir}
                if name in ("expanduser", "resolve", "absolute"):
                    return self.paths(inner, depth + 1)
                if name == "joinpath":
                    base = self.paths(inner, depth + 1)
                    parts = [self.paths(a, depth + 1) for a in node.args]
                    if base is None or any(p is None for p in parts):
                        return None
                    return {os.path.join(b, *combo) for b in base for combo in itertools.product(*parts)}
                if name in ("with_suffix", "with_name", "with_stem") and len(node.args) == 1:
                    base, arg = self.paths(inner, depth + 1), self.values(node.args[0], depth + 1)
                    if base is None or arg is None:
                        return None
                    try:
                        return {str(getattr(PurePath(b), name)(a)) for b in base for a in arg}
                    except (ValueError, TypeError):
                        return None
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self.paths(node.left, depth + 1), self.paths(node.right, depth + 1)
            if left is None or right is None:
                return None
            return {os.path.join(a, b) for a in left for b in right}
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = self.paths(node.value, depth + 1)
            return None if inner is None else {os.path.dirname(p.rstrip("/")) or "." for p in inner}
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                return None
            out: set[str] = set()
            for value in bound:
                if value[0] == "expr":
                    got = self.paths(value[1], depth + 1)
                elif value[0] == "iter":
                    got = self.iter_paths(value[1], depth + 1)
                else:
                    got = None
                if got is None:
                    return None
                out |= got
            return out
        return None

    def iter_paths(self, node: ast.AST, depth: int) -> set[str] | None:
        """Paths produced by iterating ``node``: a literal list, or a glob of a known folder."""
        got = self.elements(node, depth + 1)
        if got is not None:
            return {v for v in got if isinstance(v, str)} if all(isinstance(v, str) for v in got) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "glob", "rglob", "iterdir"):
            base = self.paths(node.func.value, depth + 1)
            pattern = self.values(node.args[0], depth + 1) if node.args else {""}
            if base is None or pattern is None or any(".." in str(p) or str(p).startswith("/") for p in pattern):
                return None
            return {os.path.join(b, "<entry>") for b in base}
        return None
