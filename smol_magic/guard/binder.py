"""The binding pass: what each name is bound to in the code, and the scopes the walk is in."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Scope:
    kind: str  # module | function | class | comprehension
    locals: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    self_name: str | None = None  # a method's first parameter
    node: ast.AST | None = None
    bindings: dict[str, list[tuple]] = field(default_factory=dict)  # name -> what the code binds it to here


_PARAM = ("param",)  # what a parameter is bound to (one tuple for all: values are never changed)


class _Binder:
    """First pass: what each name is bound to in the code, and the local names of each scope."""

    def __init__(self) -> None:
        self.bindings: dict[ast.AST, dict[str, list[tuple]]] = {}  # the scope's node -> name -> values
        self.aliases: list[tuple] = []  # x = obj.attr: attributes bound to a name (judged where the name is called)
        self.scope_locals: dict[ast.AST, set[str]] = {}
        self.scope_globals: dict[ast.AST, set[str]] = {}

    def bind(self, name: str, value: tuple, scope: ast.AST) -> None:
        in_scope = self.bindings.get(scope)
        if in_scope is None:
            in_scope = self.bindings[scope] = {}
        values = in_scope.get(name)
        if values is None:
            in_scope[name] = [value]
        else:
            values.append(value)
        local = self.scope_locals.get(scope)
        if local is None:
            self.scope_locals[scope] = {name}
        else:
            local.add(name)

    def target(self, target: ast.AST, value: tuple, scope: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value, scope)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.target(elt, ("unknown",), scope)
        elif isinstance(target, ast.Starred):
            self.target(target.value, ("unknown",), scope)

    def names(self) -> set[str]:
        """Every name the code binds, anywhere (after the pass)."""
        return set().union(*self.bindings.values())

    def statements(self, body: list[ast.stmt], scope: ast.AST) -> None:
        binders = _BINDERS
        for stmt in body:
            bind = binders.get(type(stmt))
            if bind is not None:  # expressions, returns, raises... bind nothing
                bind(self, stmt, scope)

    def _assign(self, stmt: ast.Assign, scope: ast.AST) -> None:
        for target in stmt.targets:
            if type(target) is ast.Name:  # the commonest: target()'s first branch, inline
                self.bind(target.id, ("expr", stmt.value), scope)
            else:
                self.target(target, ("expr", stmt.value), scope)
        if type(stmt.value) is ast.Attribute:
            self.aliases.append(("expr", stmt.value))

    def _annassign(self, stmt: ast.AnnAssign, scope: ast.AST) -> None:
        if stmt.value is not None:
            self.target(stmt.target, ("expr", stmt.value), scope)
        elif isinstance(stmt.target, ast.Name):
            self.scope_locals.setdefault(scope, set()).add(stmt.target.id)

    def _augassign(self, stmt: ast.AugAssign, scope: ast.AST) -> None:
        self.target(stmt.target, ("unknown",), scope)

    def _for(self, stmt: ast.For | ast.AsyncFor, scope: ast.AST) -> None:
        if isinstance(stmt.target, ast.Name):
            self.bind(stmt.target.id, ("iter", stmt.iter), scope)
        else:
            self.target(stmt.target, ("unknown",), scope)
        self.statements(stmt.body, scope)
        self.statements(stmt.orelse, scope)

    def _with(self, stmt: ast.With | ast.AsyncWith, scope: ast.AST) -> None:
        for item in stmt.items:
            if item.optional_vars is not None:
                self.target(item.optional_vars, ("with", item.context_expr), scope)
        self.statements(stmt.body, scope)

    def _import(self, stmt: ast.Import, scope: ast.AST) -> None:
        for alias in stmt.names:
            if alias.asname:
                self.bind(alias.asname, ("import", alias.name), scope)
            else:
                root = alias.name.split(".")[0]
                self.bind(root, ("import", root), scope)

    def _import_from(self, stmt: ast.ImportFrom, scope: ast.AST) -> None:
        if stmt.module and not stmt.level:
            for alias in stmt.names:
                if alias.name != "*":
                    self.bind(alias.asname or alias.name, ("from", stmt.module, alias.name), scope)

    def _function(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef, scope: ast.AST) -> None:
        self.bind(stmt.name, ("def", stmt), scope)
        args = stmt.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                self.bind(arg.arg, _PARAM, stmt)
        self.scope_locals.setdefault(stmt, set())
        self.statements(stmt.body, stmt)

    def _class(self, stmt: ast.ClassDef, scope: ast.AST) -> None:
        self.bind(stmt.name, ("class", stmt), scope)
        self.scope_locals.setdefault(stmt, set())
        self.statements(stmt.body, stmt)

    def _global(self, stmt: ast.Global | ast.Nonlocal, scope: ast.AST) -> None:
        self.scope_globals.setdefault(scope, set()).update(stmt.names)

    def _try(self, stmt: ast.Try, scope: ast.AST) -> None:
        self.statements(stmt.body, scope)
        for handler in stmt.handlers:
            if handler.name:
                self.bind(handler.name, ("unknown",), scope)
            self.statements(handler.body, scope)
        self.statements(stmt.orelse, scope)
        self.statements(stmt.finalbody, scope)

    def _if(self, stmt: ast.If | ast.While, scope: ast.AST) -> None:
        self.statements(stmt.body, scope)
        self.statements(stmt.orelse, scope)

    def _match(self, stmt: ast.Match, scope: ast.AST) -> None:
        for case in stmt.cases:
            for sub in ast.walk(case.pattern):
                name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                if isinstance(name, str):
                    self.bind(name, ("unknown",), scope)
            self.statements(case.body, scope)


# The statements that bind names or hold statements, by type (a table: most statements bind nothing).
_BINDERS = {
    ast.Assign: _Binder._assign, ast.AnnAssign: _Binder._annassign, ast.AugAssign: _Binder._augassign,
    ast.For: _Binder._for, ast.AsyncFor: _Binder._for, ast.With: _Binder._with, ast.AsyncWith: _Binder._with,
    ast.Import: _Binder._import, ast.ImportFrom: _Binder._import_from, ast.FunctionDef: _Binder._function,
    ast.AsyncFunctionDef: _Binder._function, ast.ClassDef: _Binder._class, ast.Global: _Binder._global,
    ast.Nonlocal: _Binder._global, ast.Try: _Binder._try, ast.If: _Binder._if, ast.While: _Binder._if,
    ast.Match: _Binder._match,
}
if hasattr(ast, "TryStar"):  # Python 3.11+: try/except*
    _BINDERS[ast.TryStar] = _Binder._try


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
        scopes = self.scopes
        if len(scopes) == 1:
            return scopes[0].bindings.get(name)  # the usual case: at the module level
        for iters in reversed(self.comp_iters):
            if name in iters:
                return [("iter", iters[name])]
        innermost = True
        for scope in reversed(scopes):
            if scope.kind == "comprehension":
                continue
            if name in scope.globals or scope.kind == "module":
                break
            if scope.kind == "class" and not innermost:
                continue
            innermost = False
            got = scope.bindings.get(name)
            if got is not None:
                return got
            if name in scope.locals:
                return [("unknown",)]
        return scopes[0].bindings.get(name)
