"""Rules for calls: computed attribute access, format strings, code in strings, effectful modules."""

from __future__ import annotations

import ast
import functools
import operator
import re
import string
import types

from .nodes import _MISSING, _callee_name
from .refs import _Ref, _origin, _str_attr
from .rules import (
    FILE_MODULES, FORBIDDEN_ATTRS, FORBIDDEN_BUILTINS, IPYTHON_NAMES, NETWORK_MODULES, PROCESS_CALLS,
    SAFE_DUNDERS, UNPICKLE_MODULES, WRITERS, _ACTIVE_CONTENT, _CALL_NAMES, _CLASS_NAME_ATTRS, _under,
)


@functools.lru_cache(maxsize=1024)
def _format_fields(text: str) -> tuple[tuple[str, ...] | None, ...]:
    """The attribute chains a str.format string reads (``'{0.__class__}'`` -> (('__class__',),)); None if unparsable.

    Cached (a pure function of the text; format strings repeat), hence tuples.
    """
    out: list[tuple[str, ...] | None] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except (ValueError, TypeError):
        return (None,) if "." in text or "[" in text else ()
    for _literal, field_name, spec, _conv in parsed:
        if field_name:
            chain = tuple(p for part in re.split(r"\[[^\]]*\]", field_name) for p in part.split(".")[1:] if p)
            if chain:
                out.append(chain)
        if spec and "{" in spec:
            out.extend(_format_fields(spec))
    return tuple(out)


# The keywords a rule reads on a call of any name (df.drop(..., inplace=True), np.add(a, b, out=c)); the
# other keywords rules read (mode=, con=, path_or_buf=, allow_pickle= ...) are read only for names in _CALL_NAMES.
_KEYWORD_RULES = frozenset({"inplace", "out"})
_ARG = operator.attrgetter("arg")  # a keyword's name (a C function: no Python frame per keyword)


class CallRules:
    """Call rules, one branch per kind of call. A part of the checker (``checker._Guard``)."""

    # -- calls ---------------------------------------------------------------------------

    def v_call(self, node: ast.Call) -> None:
        func = node.func
        self._call_of[func] = node
        method = type(func) is ast.Attribute
        if method:  # a method call, the commonest: callee()'s first branch, inline,
            recv = func.value  # and what the receiver denotes found once, for both rules
            base = self.ref(recv)
            name, module = func.attr, base.name if base is not None and base.kind == "module" else None
        else:
            name, module, recv = self.callee(func)
        # Only a call with a rule of its own goes to check_call; an ordinary call (most of them) has none.
        if name is not None and (
                name in _CALL_NAMES or name.startswith("fetch_") or (
                module is not None and self.effect_module(module)) or (
                type(func) is ast.Name and func.id in self.functions) or (
                node.keywords and not _KEYWORD_RULES.isdisjoint(map(_ARG, node.keywords)))):
            self.check_call(node, name, module, recv)
        if method:
            self.v_attribute(func, base)
        else:
            self.visit(func)
        visit = self.visit
        for arg in node.args:
            visit(arg)
        for kw in node.keywords:
            visit(kw.value)

    def callee(self, func: ast.AST, depth: int = 0) -> tuple[str | None, str | None, ast.AST | None]:
        """(the function's own name, the module it comes from if known, the receiver expression).

        Sees through ``getattr(df, 'to_csv')(...)`` and ``f = df.to_csv; f(...)``.
        """
        if isinstance(func, ast.Attribute):
            base = self.ref(func.value)
            return func.attr, base.name if base is not None and base.kind == "module" else None, func.value
        if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr" and \
                len(func.args) >= 2 and "getattr" not in self.bindings:
            names = self.values(func.args[1])
            if names and len(names) == 1 and isinstance(next(iter(names)), str):
                fake = ast.Attribute(value=func.args[0], attr=next(iter(names)), ctx=ast.Load())
                return self.callee(fake, depth + 1)
            return None, None, None
        if isinstance(func, ast.Name):
            bound = self.code_bindings(func.id)
            if bound:
                for value in bound:
                    if value[0] == "from":
                        return value[2], value[1], None
                    if value[0] == "expr" and isinstance(value[1], ast.Attribute) and depth < 4:
                        return self.callee(value[1], depth + 1)
                return func.id, None, None
            value = self.ns.get(func.id, _MISSING)
            if value is not _MISSING and callable(value) and not isinstance(value, type):
                return _str_attr(value, "__name__") or func.id, _str_attr(value, "__module__"), None
            return func.id, None, None
        return None, None, None

    def check_call(self, node: ast.Call, name: str, module: str | None,  # noqa: C901 - one rule per branch
                   recv: ast.AST | None) -> None:
        """The rules for a call with a rule of its own (v_call settles the others); name, module, recv: its callee."""
        builtin = isinstance(node.func, ast.Name) and node.func.id not in self.bindings and node.func.id not in self.ns
        if builtin and name in ("getattr", "hasattr", "setattr", "delattr"):
            self.dynamic_attribute(node, name)
        elif (builtin and name == "open") or (name in ("open", "FileIO", "open_code") and module in (
                "io", "_io", "codecs", "gzip", "bz2", "lzma", "builtins", "tokenize")):
            self.open_call(node)
            return
        elif builtin and name == "super":
            return
        if name in ("__getattribute__", "__getattr__", "__setattr__", "__delattr__") and node.args:
            # super().__getattribute__(name) / object.__getattribute__(self, name): a getattr in disguise
            on_super = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
            at = 0 if on_super else 1
            if len(node.args) > at:
                obj = node.func.value if on_super else node.args[0]
                fake = ast.Call(func=ast.Name("getattr", ast.Load()), args=[obj, node.args[at]], keywords=[])
                ast.copy_location(fake, node)
                self.dynamic_attribute(fake, "getattr" if "get" in name else "setattr")
        if name in ("ForwardRef", "TypeVar"):
            for arg in node.args[:1] if name == "ForwardRef" else [kw.value for kw in node.keywords if kw.arg == "bound"]:
                for text in self.values(arg) or ():
                    if isinstance(text, str):
                        self.check_code_text(node, text, f"{name}({text[:40]!r})")
        if name in ("attrgetter", "methodcaller"):
            for arg in node.args[:1] if name == "methodcaller" else node.args:
                self.literal_attr_arg(node, arg, name, dotted=name == "attrgetter")
        if name in ("format", "format_map", "vformat", "get_field") and recv is not None:
            self.format_call(node, recv)
        if name in ("eval", "query") and (recv is not None) and module is None or (name == "eval" and module and
                                                                                  module.startswith("pandas")):
            self.expression_string(node, name)
        if name in ("apply", "agg", "aggregate", "transform", "pipe", "map", "applymap", "resample_apply"):
            for arg in list(node.args[:1]) + [kw.value for kw in node.keywords if kw.arg in ("func", "arg")]:
                vals = self.values(arg) if isinstance(arg, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Name)) else None
                for v in vals or ():
                    if isinstance(v, str):
                        if v.startswith("__"):
                            self.deny(node, f"{name}({v!r}) calls a dunder method by name", "pass a function")
                        elif v in ("eval", "query") or v in WRITERS or v in PROCESS_CALLS:
                            self.ask(node, f"{name}({v!r}) calls {v} by name, which cannot be checked",
                                     "computed_access", "call the method directly")
        if name in PROCESS_CALLS:
            self.deny(node, f"{name}() {PROCESS_CALLS[name]}", "show the result instead")
        module_effects = self.module_effects(node, name, module)
        if not module_effects:
            self.io_call(node, name, module, recv)
        self.mutating_call(node, name, recv)
        if name in ("HTML", "Markdown", "SVG", "display_html", "display_markdown", "display_svg", "display",
                    "Latex", "Math", "HTMLMath"):
            for arg in node.args:
                vals = self.values(arg)
                for v in vals or ():
                    if isinstance(v, str) and _ACTIVE_CONTENT.search(v):
                        self.active_content(node, v)
                        break
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            for index in self.mutated_params(node.func.id):
                if index < len(node.args):
                    self.mutation_target(node, node.args[index], f"{node.func.id}() changes its argument "
                                                                 f"{self.snippet(node.args[index], 30)}")

    def effect_module(self, module: str) -> bool:
        got = self._effect_modules.get(module)
        if got is None:
            got = self._effect_modules[module] = _under(module, NETWORK_MODULES + UNPICKLE_MODULES + FILE_MODULES)
        return got

    def module_effects(self, node: ast.Call, name: str, module: str | None) -> bool:
        """Calls through network, pickle or file-operation modules. True when one applied."""
        if module is None or not self.effect_module(module):
            return False
        if module == "IPython.display" or module.startswith("IPython.core.display"):
            return False
        if _under(module, NETWORK_MODULES):
            self.ask(node, f"accesses the network ({module}.{name})", "network",
                     "ask the user to download the data into the notebook's folder")
            return True
        if _under(module, UNPICKLE_MODULES):
            if name in ("load", "loads", "Unpickler", "open", "DbfilenameShelf"):
                self.ask(node, f"loads a pickle with {module}.{name}(): a pickle runs code stored in it, and the "
                               "guard cannot see that code", "unpickle",
                         "read data from CSV, Parquet or JSON, or ask the user to approve this file")
            elif name in ("dump", "dumps", "Pickler"):
                if name != "dumps":
                    self.ask(node, f"writes a pickle file with {module}.{name}()", "write_files",
                             "keep the result in a variable; the user can save it")
            return True
        if _under(module, FILE_MODULES):
            if name in ("which", "disk_usage", "get_terminal_size", "get_archive_formats", "gettempdir"):
                return True
            cap = "delete_files" if name in ("rmtree", "move", "remove", "unlink") else "write_files"
            self.ask(node, f"{'deletes or moves' if cap == 'delete_files' else 'writes'} files with {module}.{name}()",
                     cap, "keep results in variables; the user can manage files")
            return True
        return False

    # -- calls: attributes by name ----------------------------------------------------------

    def dynamic_attribute(self, node: ast.Call, fn: str) -> None:
        if len(node.args) < 2:
            return
        target, name_arg = node.args[0], node.args[1]
        names = self.values(name_arg)
        if names is None or not all(isinstance(n, str) for n in names):
            if self.assembles_dunder():
                self.deny(node, f"{fn}() with a computed attribute name, in code that builds dunder names",
                          "use literal attribute names")
            else:
                self.ask(node, f"{fn}() with a computed attribute name ({self.snippet(name_arg)}) cannot be "
                               "checked before it runs", "computed_access",
                         f"use a literal name, e.g. {fn}(obj, 'mean')")
            return
        for attr in names:
            shown = f"{fn}({self.snippet(target, 30)}, {attr!r})"
            if attr.startswith("__") and attr.endswith("__") and len(attr) > 4 and attr not in SAFE_DUNDERS:
                self.deny(node, f"{shown} reaches the dunder attribute {attr!r}, which is not allowed",
                          "use public attributes and functions")
            elif fn in ("setattr", "delattr"):
                if attr.startswith("__") and attr.endswith("__"):
                    self.deny(node, f"{shown} changes the dunder attribute {attr!r}", "set ordinary attributes")
            else:
                self.check_attr_name(node, attr, target, shown)
        if fn in ("setattr", "delattr"):
            ref = self.ref(target)
            if ref is not None and ref.kind == "module":
                self.ask(node, f"{fn}() on the module {ref.name} changes it for the whole session (monkeypatching)",
                         "mutate_data", "define your own function under a new name instead")
            self.mutation_target(node, target, f"{fn}({self.snippet(target, 30)}, ...)")

    def literal_attr_arg(self, node: ast.Call, arg: ast.AST, fn: str, dotted: bool) -> None:
        names = self.values(arg)
        if names is None:
            self.ask(node, f"{fn}() with a computed attribute name cannot be checked", "computed_access",
                     "use a literal name")
            return
        for value in names:
            if isinstance(value, str):
                for attr in value.split(".") if dotted else [value]:
                    self.check_attr_name(node, attr, None, f"{fn}({value!r})")

    def assembles_dunder(self) -> bool:
        """Does the code hold string pieces that look like parts of a dunder name?"""
        if not hasattr(self, "_assembles"):
            self._assembles = any(
                isinstance(n, ast.Constant) and isinstance(n.value, str) and
                (n.value.startswith("__") or n.value.endswith("__") or n.value in ("_", "__"))
                for n in ast.walk(self.scopes[0].node))
        return self._assembles

    def format_call(self, node: ast.Call, recv: ast.AST) -> None:
        candidates = []
        recv_values = self.values(recv)
        if recv_values is not None:
            candidates += [v for v in recv_values if isinstance(v, str)]
        if node.args:
            arg_values = self.values(node.args[0])
            if arg_values is not None:
                candidates += [v for v in arg_values if isinstance(v, str)]
        if not candidates:
            if self.stringish(recv):
                self.ask(node, f"a format string computed at run time ({self.snippet(recv)}) can read attributes "
                               "through its fields", "computed_access", "use an f-string or a literal format string")
            return
        if _callee_name(node.func) == "get_field":
            candidates = ["{" + c + "}" for c in candidates]
        for text in candidates:
            for chain in _format_fields(text):
                if chain is None:
                    if self.assembles_dunder():
                        self.deny(node, "a format string with unparseable fields", "use a simple format string")
                    continue
                for i, attr in enumerate(chain):
                    nxt = chain[i + 1] if i + 1 < len(chain) else None
                    self.check_attr_name(node, attr, None, f"the format field .{attr} in {text[:40]!r}",
                                         class_ok=nxt in _CLASS_NAME_ATTRS)

    def stringish(self, node: ast.AST) -> bool:
        """Might this expression be a string the code computed (rather than some other object)?"""
        if isinstance(node, (ast.BinOp, ast.JoinedStr, ast.Constant)):
            return True
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            return name in ("str", "chr", "join", "replace", "lower", "upper", "strip", "format", "decode")
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                return isinstance(self.ns.get(node.id), str)
            return any(v[0] == "expr" and self.stringish(v[1]) for v in bound if v[0] == "expr" and
                       not isinstance(v[1], ast.Name))
        if isinstance(node, ast.Subscript):
            return False
        return False

    def expression_string(self, node: ast.Call, name: str) -> None:
        """pandas' eval/query strings can read attributes (dunders included) and call functions."""
        arg = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg in ("expr",)), None)
        if arg is None:
            return
        vals = self.values(arg)
        if vals is None or not all(isinstance(v, str) for v in vals):
            self.ask(node, f"{name}() with an expression computed at run time cannot be checked", "computed_access",
                     "use ordinary pandas indexing, or a literal expression")
            return
        for text in vals:
            cleaned = re.sub(r"`[^`]*`", "_col", text).replace("@", "")
            if not self.check_code_text(node, cleaned, f"{name}({text[:40]!r})"):
                self.ask(node, f"{name}({text[:40]!r}) cannot be parsed, so it cannot be checked",
                         "computed_access", "use ordinary pandas indexing")

    def check_code_text(self, node: ast.AST, text: str, shown: str) -> bool:
        """A string that some library evaluates as Python (pandas eval/query, string annotations,
        ForwardRef): check its names and attributes like code. False if it does not parse."""
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            try:
                tree = ast.parse(text.strip())
            except SyntaxError:
                return False
        subs = list(ast.walk(tree))
        following = {sub.value: sub.attr for sub in subs if isinstance(sub, ast.Attribute)}
        for sub in subs:
            if isinstance(sub, ast.Attribute):
                self.check_attr_name(node, sub.attr, None, shown,
                                     class_ok=following.get(sub) in _CLASS_NAME_ATTRS)
            elif isinstance(sub, ast.Name):
                value = self.ns.get(sub.id, _MISSING)
                if sub.id in FORBIDDEN_BUILTINS or sub.id in IPYTHON_NAMES or sub.id in FORBIDDEN_ATTRS or \
                        sub.id in ("getattr", "setattr", "delattr", "hasattr") or (
                        sub.id.startswith("__") and sub.id.endswith("__")):
                    self.deny(node, f"{shown} uses {sub.id!r}, which is not allowed", "write the code directly")
                elif isinstance(value, types.ModuleType):
                    self.check_ref(node, _Ref("module", value.__name__, value), shown)
                elif value is not _MISSING and callable(value):
                    self.check_ref(node, _Ref("object", _origin(value), value), shown)
        return True

    def annotation(self, node: ast.AST | None) -> None:
        """Visit an annotation; string annotations are code too (typing.get_type_hints evaluates them)."""
        if node is None:
            return
        self.visit(node)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self.check_code_text(sub, sub.value, f"the string annotation {sub.value[:40]!r}")
