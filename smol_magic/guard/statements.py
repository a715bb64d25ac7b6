"""Rules for statements that bind or change names: assignments, definitions, comprehensions, literals."""

from __future__ import annotations

import ast

from .binder import _Scope
from .data import _changed_roots, _immutable
from .nodes import _target_names
from .rules import _ACTIVE_CONTENT, _CODE_IN_STRING, _KNOWN_BACKENDS, _MAYBE_CODE, _OPS, _PLOTTING_BACKENDS


_NONE: frozenset[str] = frozenset()


class StatementRules:
    """Statements that bind or change, and literals that carry code. A part of the checker (``checker._Guard``)."""

    # -- visitors: statements that bind or change -------------------------------------

    def v_assign(self, node: ast.Assign) -> None:
        value = node.value
        self.visit(value)
        for target in node.targets:
            if type(target) is ast.Attribute and target.attr == "backend" and type(target.value) is ast.Attribute \
                    and target.value.attr == "plotting":
                for backend in self.values(value) or {None}:
                    if backend not in _PLOTTING_BACKENDS:
                        self.deny(node, f"the plotting backend {backend!r} is a module pandas would import by name",
                                  "use the default plotting backend")
        for target in node.targets:
            if type(target) is ast.Name:  # the commonest: straight to its rule
                if type(value) is ast.Name and target.id == value.id:
                    continue  # x = x
                self.v_name(target)
            else:
                self.visit(target)

    def v_annassign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        self.annotation(node.annotation)

    def v_augassign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        target = node.target
        if isinstance(target, ast.Name):
            if self.binds_module_name(target.id) and not self.is_local(target.id):
                protected, why = self.protected(target.id)
                if protected:
                    value = self.ns.get(target.id)
                    if _immutable(value):
                        self.ask(node, f"rebinds the user's variable {target.id!r} ({why})",
                                 self.data_capability(target.id),
                                 "store the result under a new name")
                    else:
                        self.mutation(node, target.id, f"{target.id} {_OPS.get(type(node.op), '<op>')}= "
                                                       f"{self.snippet(node.value, 30)}")
        else:
            self.visit(target)

    def v_delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.visit(target)

    def v_for(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    def v_with(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    def v_namedexpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def v_handler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.check_store_dunder(node, node.name)
            self.store_name(node, node.name, None)
        for stmt in node.body:
            self.visit(stmt)

    def v_match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        for case in node.cases:
            for sub in ast.walk(case.pattern):
                name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                if isinstance(name, str):
                    self.store_name(sub, name, None)
                if isinstance(sub, ast.MatchValue):
                    self.visit(sub.value)
                elif isinstance(sub, ast.MatchClass):
                    self.visit(sub.cls)
            if case.guard is not None:
                self.visit(case.guard)
            for stmt in case.body:
                self.visit(stmt)

    def v_global(self, node: ast.Global) -> None:
        self.scope.globals.update(node.names)

    def v_function(self, node: ast.FunctionDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        args = node.args
        positional = args.posonlyargs + args.args
        for default in args.defaults:
            self.visit(default)
        for default in args.kw_defaults:
            if default is not None:
                self.visit(default)
        for arg in (*positional, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self.annotation(arg.annotation)
        self.annotation(node.returns)
        name = node.name
        if name.startswith("_repr_javascript"):
            self.deny(node, "defining _repr_javascript_ makes objects show code in the user's browser",
                      "show results as text, tables or figures")
        self.store_name(node, name, None)
        params = [a.arg for a in positional]
        in_class = self.scopes[-1].kind == "class"
        binder = self.binder
        # (the binder's sets and dicts, not copies: nothing changes them now; globals: v_global adds to them)
        scope = _Scope("function", binder.scope_locals.get(node, _NONE), set(binder.scope_globals.get(node, ())),
                       self_name=params[0] if in_class and params else None, node=node,
                       bindings=binder.bindings.get(node, {}))
        self.scopes.append(scope)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()
        if not in_class and params and self.context is not None:
            self.functions[node.name] = (node, params)

    def mutated_params(self, name: str) -> set[int]:
        """Positions of the parameters a function defined in the code changes in place."""
        got = self._mutated_params.get(name)
        if got is None:
            func, params = self.functions[name]
            changed = _changed_roots(func)
            got = self._mutated_params[name] = {i for i, p in enumerate(params) if p in changed}
        return got

    def v_lambda(self, node: ast.Lambda) -> None:
        args = node.args
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg] if a}
        self.scopes.append(_Scope("function", names, node=node))
        self.visit(node.body)
        self.scopes.pop()

    def v_class(self, node: ast.ClassDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        for base in node.bases:
            self.visit(base)
        for kw in node.keywords:
            self.visit(kw.value)
        self.store_name(node, node.name, None)
        self.scopes.append(_Scope("class", self.binder.scope_locals.get(node, _NONE), node=node,
                                  bindings=self.binder.bindings.get(node, {})))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def v_comp(self, node: ast.AST) -> None:
        names: set[str] = set()
        iters: dict[str, ast.expr] = {}
        for gen in node.generators:
            _target_names(gen.target, names)
            if isinstance(gen.target, ast.Name):
                iters[gen.target.id] = gen.iter
        self.visit(node.generators[0].iter)
        self.scopes.append(_Scope("comprehension", names, node=node))
        self.comp_iters.append(iters)
        for i, gen in enumerate(node.generators):
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.comp_iters.pop()
        self.scopes.pop()

    def v_await(self, node: ast.Await) -> None:
        if not any(s.kind == "function" and isinstance(s.node, ast.AsyncFunctionDef) for s in self.scopes):
            self.deny(node, "top-level await is not supported in agent code", "write synchronous code")
        self.visit(node.value)

    # -- constants -------------------------------------------------------------------

    def v_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and len(value) > 5 and _MAYBE_CODE.search(value):
            if _ACTIVE_CONTENT.search(value):
                self.active_content(node, value)
            match = _CODE_IN_STRING.search(value)
            if match:
                self.deny(node, f"a string holds code that reaches interpreter internals ({match.group(0)!r}); "
                                "template, query, annotation and format strings are code", "use plain strings")
            if value.startswith("module://") and not _KNOWN_BACKENDS.match(value):
                self.deny(node, f"{value[:60]!r} names a module to import (a plotting backend)",
                          "use the notebook's default backend")

    def v_joinedstr(self, node: ast.JoinedStr) -> None:
        folded = self.values(node)
        if folded is not None:
            for text in folded:
                if isinstance(text, str) and _ACTIVE_CONTENT.search(text):
                    self.active_content(node, text)
                    break
                if isinstance(text, str) and _CODE_IN_STRING.search(text):
                    self.deny(node, "a string holds code that reaches interpreter internals", "use plain strings")
                    break
        text = "".join(p.value if isinstance(p, ast.Constant) else "x" for p in node.values)
        if _ACTIVE_CONTENT.search(text):
            self.active_content(node, text)
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                self.visit(part.value)
                if part.format_spec is not None:
                    self.visit(part.format_spec)

    def active_content(self, node: ast.AST, text: str) -> None:
        match = _ACTIVE_CONTENT.search(text)
        found = match.group(0) if match else text[:20]
        self.deny(node, f"the string contains active content for the browser ({found!r}: scripts, event "
                        "handlers, frames or javascript: URLs)",
                  "show results as plain text, Markdown, DataFrames or figures, without scripts or event handlers")
