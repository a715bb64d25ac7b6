"""The binding pass: what each name is bound to in the code, and the scopes the walk is in."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class _Scope:
    kind: str  # module | function | class | comprehension
    locals: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    self_name: str | None = None  # a method's first parameter
    node: ast.AST | None = None


class _Binder:
    """First pass: what each name is bound to in the code, and the local names of each scope."""

    def __init__(self) -> None:
        self.bindings: dict[tuple[int, str], list[tuple]] = {}  # (id of the scope node, name) -> values
        self.names: set[str] = set()  # every name the code binds, anywhere
        self.aliases: list[tuple] = []  # x = obj.attr: attributes bound to a name (judged where the name is called)
        self.scope_locals: dict[int, set[str]] = {}
        self.scope_globals: dict[int, set[str]] = {}

    def bind(self, name: str, value: tuple, scope: ast.AST) -> None:
        self.bindings.setdefault((id(scope), name), []).append(value)
        self.names.add(name)
        self.scope_locals.setdefault(id(scope), set()).add(name)

    def target(self, target: ast.AST, value: tuple, scope: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value, scope)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.target(elt, ("unknown",), scope)
        elif isinstance(target, ast.Starred):
            self.target(target.value, ("unknown",), scope)

    def statements(self, body: list[ast.stmt], scope: ast.AST) -> None:
        for stmt in body:
            self.statement(stmt, scope)

    def statement(self, stmt: ast.stmt, scope: ast.AST) -> None:  # noqa: C901 - a dispatch table
        t = type(stmt)
        if t is ast.Assign:
            for target in stmt.targets:
                self.target(target, ("expr", stmt.value), scope)
            if isinstance(stmt.value, ast.Attribute):
                self.aliases.append(("expr", stmt.value))
        elif t is ast.AnnAssign:
            if stmt.value is not None:
                self.target(stmt.target, ("expr", stmt.value), scope)
            elif isinstance(stmt.target, ast.Name):
                self.scope_locals.setdefault(id(scope), set()).add(stmt.target.id)
        elif t is ast.AugAssign:
            self.target(stmt.target, ("unknown",), scope)
        elif t in (ast.For, ast.AsyncFor):
            if isinstance(stmt.target, ast.Name):
                self.bind(stmt.target.id, ("iter", stmt.iter), scope)
            else:
                self.target(stmt.target, ("unknown",), scope)
        elif t in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.target(item.optional_vars, ("with", item.context_expr), scope)
        elif t is ast.Import:
            for alias in stmt.names:
                if alias.asname:
                    self.bind(alias.asname, ("import", alias.name), scope)
                else:
                    root = alias.name.split(".")[0]
                    self.bind(root, ("import", root), scope)
        elif t is ast.ImportFrom:
            if stmt.module and not stmt.level:
                for alias in stmt.names:
                    if alias.name != "*":
                        self.bind(alias.asname or alias.name, ("from", stmt.module, alias.name), scope)
        elif t in (ast.FunctionDef, ast.AsyncFunctionDef):
            self.bind(stmt.name, ("def", stmt), scope)
            args = stmt.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None:
                    self.bind(arg.arg, ("param",), stmt)
            self.scope_locals.setdefault(id(stmt), set())
            self.statements(stmt.body, stmt)
        elif t is ast.ClassDef:
            self.bind(stmt.name, ("class", stmt), scope)
            self.scope_locals.setdefault(id(stmt), set())
            self.statements(stmt.body, stmt)
        elif t in (ast.Global, ast.Nonlocal):
            self.scope_globals.setdefault(id(scope), set()).update(stmt.names)
        elif t is ast.Try or t.__name__ == "TryStar":
            self.statements(stmt.body, scope)
            for handler in stmt.handlers:
                if handler.name:
                    self.bind(handler.name, ("unknown",), scope)
                self.statements(handler.body, scope)
            self.statements(stmt.orelse, scope)
            self.statements(stmt.finalbody, scope)
        elif t in (ast.If, ast.While):
            self.statements(stmt.body, scope)
            self.statements(stmt.orelse, scope)
        elif t is ast.Match:
            for case in stmt.cases:
                for sub in ast.walk(case.pattern):
                    name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                    if isinstance(name, str):
                        self.bind(name, ("unknown",), scope)
                self.statements(case.body, scope)
        if t in (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith):
            self.statements(stmt.body, scope)
            self.statements(getattr(stmt, "orelse", []), scope)


class Scopes:
    """Scope queries of the checker: where a store binds, what a name is bound to here.

    A part of the checker (``checker._Guard``).
    """

    # -- scopes ------------------------------------------------------------------

    @property
    def scope(self) -> _Scope:
        return self.scopes[-1]

    def binds_module_name(self, name: str) -> bool:
        """Does storing ``name`` here bind it in the user's namespace?"""
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                continue  # only walrus targets reach here: they bind in the enclosing scope
            if scope.kind == "module":
                return True
            if scope.kind == "function":
                return name in scope.globals
            return False  # class body
        return True

    def is_local(self, name: str) -> bool:
        """Is ``name`` a local variable (parameter or assigned) of an enclosing function or comprehension?"""
        for scope in reversed(self.scopes):
            if name in scope.globals:
                return False
            if scope.kind in ("function", "comprehension") and name in scope.locals:
                return True
        return False

    # -- what a name is bound to here ------------------------------------------

    def code_bindings(self, name: str) -> list[tuple] | None:
        """What ``name`` is bound to by the code, in the scope being checked (None: not bound by the code)."""
        for iters in reversed(self.comp_iters):
            if name in iters:
                return [("iter", iters[name])]
        innermost = True
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                continue
            if name in scope.globals or scope.kind == "module":
                break
            if scope.kind == "class" and not innermost:
                continue
            innermost = False
            got = self.binder.bindings.get((id(scope.node), name))
            if got is not None:
                return got
            if name in scope.locals:
                return [("unknown",)]
        return self.binder.bindings.get((id(self.scopes[0].node), name))
