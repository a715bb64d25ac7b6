"""Rules for names, attributes and imports: forbidden modules and builtins, dunders, IPython's objects."""

from __future__ import annotations

import ast
import builtins
import functools
import os
import sys

from ..core.tools import Tool
from .nodes import _Lazy, _MISSING, _is_builtin_here, _is_data
from .refs import _Ref, _attr_ref, _installed, _is_submodule, _str_attr
from .rules import (
    AMBIGUOUS_MODULE_ATTRS, DANGEROUS_FUNCTION_MODULES, FORBIDDEN_ATTRS, FORBIDDEN_BUILTINS, IPYTHON_NAMES,
    PROCESS_CALLS, SAFE_DUNDERS, SAFE_DUNDER_NAMES, SUPER_DUNDERS, _CLASS_NAME_ATTRS, _DANGEROUS_BUILTINS,
    _IPYTHON_INPUT, _REF_EFFECTS, _SPECIAL_NAMES,
)


def _forbidden_attr(attr: str) -> str | None:
    """Why an attribute name is denied on any object, or None."""
    why = FORBIDDEN_ATTRS.get(attr)
    if why is None and ("subprocess" in attr.lower() or attr.startswith("_repr_javascript")):
        why = "running processes"
    return why


@functools.lru_cache(maxsize=65_536)
def _plain_attr(attr: str) -> bool:
    """An attribute name no rule looks at by itself (no dunder, nothing forbidden, no I/O function): only its
    receiver can make reading it matter (a module's private or forbidden member). Cached: names repeat."""
    return not ((attr.startswith("__") and attr.endswith("__")) or attr in _REF_EFFECTS or _forbidden_attr(attr))


class NameRules:
    """Names, attributes and imports. A part of the checker (``checker._Guard``)."""

    # -- visitors: names and attributes -----------------------------------------

    def v_name(self, node: ast.Name) -> None:
        name = node.id
        if isinstance(node.ctx, ast.Load):
            self.check_name_load(node, name)
        else:
            if name.startswith("__") and name.endswith("__") and len(name) > 4:
                allowed = self.scope.kind == "class" or name in ("__all__", "__version__", "__doc__", "__author__")
                if not allowed or name in ("__builtins__", "__class__", "__dict__", "__globals__"):
                    self.deny(node, f"assigning the dunder name {name!r} is not allowed",
                              "use an ordinary variable name")
            self.store_name(node, name, node, delete=isinstance(node.ctx, ast.Del))

    def check_name_load(self, node: ast.AST, name: str) -> None:
        """A name read. ``_Guard.visit`` calls this only when one of the two conditions below holds (it tests
        them inline, for speed): a condition added here must be added there too."""
        if name in _SPECIAL_NAMES or name[:1] == "_":
            self.check_special_name(node, name)
        elif name in self.ns and name not in self.bindings and name not in self._ns_checked:
            self._ns_checked.add(name)
            ref = self.ref(node)
            if ref is not None:
                self.check_ref(node, ref, name)

    def io_reference(self, node: ast.AST, name: str) -> None:
        """An I/O function passed around as a value (map(pd.read_csv, files), partial(df.to_csv, p)):
        its arguments cannot be seen, so it is judged by what it does."""
        if any(v[0] == "expr" and isinstance(v[1], ast.Attribute) and v[1] is node
               for v in self.binder.aliases):
            return  # f = df.to_csv: judged where f is called
        effect = _REF_EFFECTS[name]
        shown = f"{name} is passed around as a value, so its arguments cannot be checked"
        if effect == "deny":
            self.deny(node, f"{shown}; {PROCESS_CALLS.get(name, 'it is not allowed')}", "do not use it")
        else:
            self.ask(node, shown, effect, f"call {name}(...) directly with a literal path")

    def check_special_name(self, node: ast.AST, name: str) -> None:
        if name in FORBIDDEN_BUILTINS and name not in self.bindings and _is_builtin_here(self.ns, name):
            self.deny(node, f"{name!r} is not allowed in agent code (it runs or inspects code dynamically)",
                      "write the code directly, without eval/exec/compile/globals/vars")
            return
        if name in IPYTHON_NAMES or _IPYTHON_INPUT.match(name):
            self.deny(node, f"{name!r} is IPython's own object and is not allowed in agent code",
                      "write plain Python; the shell, its history and magics are off limits")
            return
        if name.startswith("__") and name.endswith("__") and len(name) > 4 and name not in SAFE_DUNDER_NAMES:
            self.deny(node, f"the dunder name {name!r} is not allowed", "use public names")
            return
        if name in FORBIDDEN_ATTRS and name in _SPECIAL_NAMES and name not in self.bindings and (
                not _is_data(self.ns, name) or isinstance(self.ns.get(name), os._Environ)):
            self.deny(node, f"{name!r} ({FORBIDDEN_ATTRS[name]}) is not allowed in agent code",
                      "use the authorized modules")
            return
        if name in _REF_EFFECTS:
            if node not in self._call_of:
                bound = self.code_bindings(name)
                origins = [v[2] for v in bound or () if v[0] == "from"]
                if bound is None and name == "open" and _is_builtin_here(self.ns, name):
                    self.io_reference(node, "open")
                elif origins and origins[0] in _REF_EFFECTS:
                    self.io_reference(node, origins[0])
            return
        if name in ("getattr", "setattr", "delattr", "hasattr") and name not in self.bindings:
            parent_call = node in self._call_of
            if not parent_call and self.assembles_dunder():
                self.deny(node, f"{name} is passed around as a value in code that builds dunder names",
                          "call getattr(obj, 'literal_name') directly")
            elif not parent_call:
                self.ask(node, f"{name} is passed around as a value, so the attribute names it will use cannot be "
                               "checked", "computed_access", "call getattr(obj, 'literal_name') directly")
            return
        if name not in self.bindings and name in self.ns:
            ref = self.ref(node)
            if ref is not None:
                self.check_ref(node, ref, name)

    def check_ref(self, node: ast.AST, ref: _Ref, shown: str) -> None:
        """A name or chain reaches a module or an object: is it one agent code may use?"""
        if ref.kind == "module":
            if self.policy.module_forbidden(ref.name):
                self.deny(node, f"{shown} reaches the module {ref.name!r}, which is forbidden "
                                "(process, OS or interpreter access)", "use the authorized modules")
            elif not self.import_allowed(ref.name):
                self.deny(node, f"{shown} reaches the module {ref.name!r}, which is not authorized",
                          "use the authorized modules")
                self.findings[-1].note = "It does not run; the user can authorize the module (--imports)."
            return
        obj = ref.obj
        if isinstance(obj, os._Environ):
            self.deny(node, f"{shown} is the process environment (it holds credentials)",
                      "credentials are not available to agent code; ask the user for what you need")
            return
        if obj is _MISSING or not callable(obj):
            return
        if isinstance(obj, Tool):  # a tool that asks for a person (an MCP tool its annotations call risky)
            reason = obj.approval_reason()
            if reason:
                self.ask(node, f"{shown}(...) {reason}", None, "let the user approve the call, or do without it")
        name = _DANGEROUS_BUILTINS.get(id(obj))
        if name is not None and obj is getattr(builtins, name, None):
            self.deny(node, f"{shown} is the builtin {name}(), which is not allowed in agent code",
                      "write the code directly")
            return
        module = _str_attr(obj, "__module__")
        own_name = _str_attr(obj, "__name__") or "?"
        if module is None:
            return
        if module.split(".")[0] in DANGEROUS_FUNCTION_MODULES and not self.policy.releases(module):
            self.deny(node, f"{shown} is {module}.{own_name}, from a forbidden module",
                      "use the authorized modules")
        elif own_name in FORBIDDEN_ATTRS and module.startswith(("IPython", "ipykernel")):
            self.deny(node, f"{shown} is {own_name} ({FORBIDDEN_ATTRS[own_name]}), which is not allowed",
                      "show results as text, tables, DataFrames or figures")
        elif module.startswith(("IPython", "ipykernel")) and not module.startswith(
                ("IPython.core.display", "IPython.display", "IPython.lib.display")) and \
                own_name not in ("display", "clear_output", "update_display"):
            self.deny(node, f"{shown} is IPython's {own_name}, which is not allowed in agent code",
                      "write plain Python")

    def v_attribute(self, node: ast.Attribute, base: _Ref | None = _MISSING) -> None:
        """``base``: what ``node.value`` denotes, ``self.ref(node.value)``, if the caller has it (a method call)."""
        attr = node.attr
        ctx = node.ctx
        if type(ctx) is ast.Load and _plain_attr(attr):  # the usual case: df.groupby, s.mean, ax.bar
            value = node.value
            # (no _next_attr entry: it is only asked whether the next attribute is one of _CLASS_NAME_ATTRS,
            # all dunders, and a plain attribute is no dunder)
            if base is _MISSING:
                base = self.ref(value)
            if base is not None and base.kind == "module":
                self.check_attr_name(node, attr, value)
            self.visit(value)
            return
        if attr in _REF_EFFECTS and type(ctx) is ast.Load and node not in self._call_of:
            self.io_reference(node, attr)
        self._next_attr[node.value] = attr
        if attr.startswith("__") and attr.endswith("__") and len(attr) > 4:
            self.check_dunder(node, attr, ctx)
        elif isinstance(ctx, ast.Load):
            self.check_attr_name(node, attr, node.value)
        if not isinstance(ctx, ast.Load):
            self.store_target(node, delete=isinstance(ctx, ast.Del))
        self.visit(node.value)

    def v_subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.store_target(node, delete=isinstance(node.ctx, ast.Del))
        self.visit(node.value)
        self.visit(node.slice)

    def check_dunder(self, node: ast.Attribute, attr: str, ctx: ast.AST) -> None:
        if not isinstance(ctx, ast.Load):
            self.deny(node, f"assigning or deleting the dunder attribute {attr!r} is not allowed",
                      "set ordinary attributes")
            return
        if attr == "__class__":
            if self._next_attr.get(node) in _CLASS_NAME_ATTRS or (
                    node in self._call_of and isinstance(node.value, ast.Name) and
                    node.value.id == self.method_self()):
                return
            self.deny(node, "access to '__class__' is only allowed as x.__class__.__name__ (or self.__class__(...)); "
                            "use type(x) for the class", "use type(x), isinstance(x, T) or type(x).__name__")
            return
        if attr in SAFE_DUNDERS:
            return
        if attr in SUPER_DUNDERS and self.is_super_call_receiver(node):
            return
        self.deny(node, f"access to the dunder attribute {attr!r} is not allowed",
                  "use public attributes and functions (type(x), isinstance, dir)")

    def is_super_call_receiver(self, node: ast.Attribute) -> bool:
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
            return True
        call = self._call_of.get(node)
        self_name = self.method_self()
        if call is not None and self_name and call.args and isinstance(call.args[0], ast.Name) and \
                call.args[0].id == self_name and isinstance(value, ast.Name):
            return True  # Base.__init__(self, ...) inside a method
        return False

    def method_self(self) -> str | None:
        for scope in reversed(self.scopes):
            if scope.kind == "function":
                return scope.self_name
        return None

    def check_attr_name(self, node: ast.AST, attr: str, value: ast.AST | None, shown: str | None = None,
                        class_ok: bool = True) -> None:
        """Checks one attribute name read from ``value`` (None: the receiver is unknown)."""
        if attr.startswith("__") and attr.endswith("__") and len(attr) > 4:
            if attr not in SAFE_DUNDERS or (attr == "__class__" and not class_ok):
                shown = shown or self.snippet(node)
                self.deny(node, f"{shown} reads the dunder attribute {attr!r}, which is not allowed",
                          "use public attributes")
            return
        why = _forbidden_attr(attr)
        if why is None:
            if value is None:
                return
            base = self.ref(value)
            if base is None or base.kind != "module":
                return  # the usual case: an attribute of an object, not of a module
        if shown is None:
            shown = _Lazy(lambda: self.snippet(node) if isinstance(node, ast.Attribute) else repr(attr))
        if why is not None:
            self.deny(node, f"{shown} reaches {attr!r} ({why}), which is not allowed in agent code",
                      "use the public API of the authorized modules")
            return
        if attr.startswith("_"):
            self.deny(node, f"{shown} reaches {attr!r}, a private internal of the module {base.name!r}",
                      f"use the public API of {base.name.split('.')[0]}")
            return
        target = self.ref(node) if isinstance(node, ast.Attribute) else _attr_ref(base, attr)
        if target is None:
            return
        if target.kind == "module":
            self.check_ref(node, target, shown)
        elif target.obj is _MISSING:
            if attr in AMBIGUOUS_MODULE_ATTRS and _installed(base.name):
                self.deny(node, f"{shown} looks like the module {attr!r} held by {base.name!r}, which is not allowed",
                          "use the public API of the authorized modules")
        else:
            self.check_ref(node, target, shown)

    # -- visitors: imports ----------------------------------------------------------

    def check_module(self, node: ast.AST, module: str) -> bool:
        if self.policy.module_forbidden(module):
            self.deny(node, f"import of {module!r} is forbidden (process, OS or interpreter access)",
                      "use the authorized modules")
            return False
        if not self.policy.import_allowed(module):
            self.deny(node, f"import of {module!r} is not authorized; authorized: "
                            f"{', '.join(self.policy.authorized_imports)}", "use the authorized modules")
            self.findings[-1].note = "It does not run; the user can authorize it (--imports or authorized_imports)."
            return False
        if any(p.startswith("_") and not p.startswith("__") for p in module.split(".")[1:]):
            self.deny(node, f"import of {module!r}: private internals of a library are off limits",
                      "use the library's public API")
            return False
        return True

    def v_import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module(node, alias.name)
            bound = alias.asname or alias.name.split(".")[0]
            self.store_import(node, bound, alias.asname and alias.name or alias.name.split(".")[0], None)
            if alias.asname:
                self.check_store_dunder(node, alias.asname)

    def v_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.deny(node, "relative imports are not allowed", "import modules by their full name")
            return
        module = node.module or ""
        if not self.check_module(node, module):
            return
        mod = sys.modules.get(module)
        for alias in node.names:
            if alias.name == "*":
                continue
            shown = f"from {module} import {alias.name}"
            if alias.name.startswith("__") and alias.name.endswith("__"):
                if alias.name not in SAFE_DUNDERS:
                    self.deny(node, f"{shown}: importing the dunder {alias.name!r} is not allowed", "use public names")
                continue
            if module == "IPython.display" or module.startswith("IPython.display."):
                if alias.name in FORBIDDEN_ATTRS:
                    self.deny(node, f"{shown}: {alias.name} shows active content (code) in the user's browser",
                              "show results as text, tables, DataFrames or figures")
                continue
            if _is_submodule(module, alias.name, mod):
                self.check_module(node, f"{module}.{alias.name}")
            else:
                why = FORBIDDEN_ATTRS.get(alias.name)
                if why is not None:
                    self.deny(node, f"{shown} reaches {alias.name!r} ({why}), which is not allowed",
                              "use the public API of the authorized modules")
                elif alias.name.startswith("_"):
                    self.deny(node, f"{shown}: private internals of a library are off limits",
                              "use the library's public API")
                else:
                    target = _attr_ref(_Ref("module", module, mod if mod is not None else _MISSING), alias.name)
                    if target.kind == "module" or target.obj is not _MISSING:
                        self.check_ref(node, target, shown)
                    elif alias.name in AMBIGUOUS_MODULE_ATTRS and _installed(module):
                        self.deny(node, f"{shown} looks like a module that is not allowed", "use the public API")
            bound = alias.asname or alias.name
            self.check_store_dunder(node, bound)
            self.store_import(node, bound, None, (module, alias.name))

    def check_store_dunder(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") and name.endswith("__") and len(name) > 4:
            self.deny(node, f"binding the dunder name {name!r} is not allowed", "use an ordinary name")

    def store_import(self, node: ast.AST, bound: str, module: str | None, from_: tuple[str, str] | None) -> None:
        if not self.binds_module_name(bound):
            return
        current = self.ns.get(bound, _MISSING)
        if current is not _MISSING:
            if module is not None and sys.modules.get(module, _MISSING) is current:
                return  # re-running `import pandas as pd` where pd already is pandas
            if from_ is not None:
                mod = sys.modules.get(from_[0])
                if mod is not None and getattr(mod, from_[1], _MISSING) is current:
                    return
                if sys.modules.get(f"{from_[0]}.{from_[1]}", _MISSING) is current:
                    return
        self.store_name(node, bound, None)
