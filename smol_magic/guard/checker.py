"""``check()``: parse the action, walk its tree with the rules, turn the findings into a verdict."""

from __future__ import annotations

import ast
import re
from typing import Any, Callable, Mapping

from .binder import Scopes, _Binder, _Scope
from .calls import CallRules
from .data import DataRules
from .files import FileRules
from .fold import Folding
from .names import NameRules
from .policy import Finding, GuardContext, GuardVerdict, Policy, _verdict
from .refs import Resolution, _Ref
from .rules import _MAYBE_CODE, _SPECIAL_NAMES
from .statements import StatementRules


# -- the entry point ------------------------------------------------------------------------------


def check(code: str, policy: Policy | None = None, context: GuardContext | None = None,
          tree: ast.Module | None = None) -> GuardVerdict:
    """Judge one action before it runs: allow, ask or deny, with reasons.

    Without ``context`` the user's data is not judged (no namespace to judge it against).
    ``tree``: ``ast.parse(code)`` if the caller has it already (the guard does not change it).
    """
    policy = policy or Policy()
    if not policy.enabled:
        return GuardVerdict("allow", ["the guard is off for this cell: nothing was checked"])
    try:
        tree = tree if tree is not None else ast.parse(code)
    except SyntaxError as exc:
        finding = _ipython_escape(code) or Finding(
            "deny", f"the code does not parse: {exc.msg}", exc.lineno,
            instead="write valid Python (no shell commands or magics)")
        return _verdict([finding], policy)
    except (ValueError, RecursionError, MemoryError) as exc:
        return _verdict([Finding("deny", f"the code cannot be parsed: {exc}", instead="write simpler code")],
                        policy)
    guard = _Guard(policy, context)
    try:
        guard.run(tree)
    except RecursionError:
        guard.deny(None, "the code is nested too deeply to be checked", "write flatter code")
    except Exception as exc:  # noqa: BLE001 - fail closed: code the guard could not check does not run
        guard.deny(None, f"the guard could not check this code ({type(exc).__name__}: {exc})",
                   "write simpler code")
    return _verdict(guard.findings, policy)


def _ipython_escape(code: str) -> Finding | None:
    for number, line in enumerate(code.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("!") or re.match(r"^\w+\s*=\s*!", stripped):
            return Finding("deny", f"shell commands are not allowed in agent code: {stripped[:60]!r}", number,
                           instead="use Python functions of the authorized modules")
        if stripped.startswith("%") or re.match(r"^\w+\s*=\s*%", stripped):
            return Finding("deny", f"IPython magics are not allowed in agent code: {stripped[:60]!r}", number,
                           instead="write plain Python")
        if re.match(r"^[\w.]+\?\??\s*$", stripped) or stripped.startswith("?"):
            return Finding("deny", f"IPython help syntax is not allowed in agent code: {stripped[:60]!r}",
                           number, instead="write plain Python")
    return None


# Fields that never hold code worth visiting (contexts, operators, names as strings).
_LEAF_FIELDS = frozenset({"ctx", "op", "ops", "type_comment", "kind", "conversion", "is_async", "id", "attr",
                          "name", "arg", "level", "module", "n", "s", "value_str"})
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_NAME, _CONSTANT, _LOAD = ast.Name, ast.Constant, ast.Load


def _noop(guard: "_Guard", node: ast.AST) -> None:
    return None


class _Guard(NameRules, StatementRules, CallRules, FileRules, DataRules, Folding, Resolution, Scopes):
    """One check of one action: the state of the walk, and the rules (one part per concern)."""

    def __init__(self, policy: Policy, context: GuardContext | None):
        self.policy = policy
        self.context = context
        self.ns: Mapping[str, Any] = context.namespace if context is not None else {}
        self.findings: list[Finding] = []
        self.scopes: list[_Scope] = []
        self.comp_iters: list[dict[str, ast.expr]] = []
        self.functions: dict[str, tuple[ast.AST, list[str]]] = {}  # functions the code defines, by name
        self._mutated_params: dict[str, set[int]] = {}
        self._ref_cache: dict[ast.AST, _Ref | None] = {}
        self._name_refs: dict[str, _Ref | None] = {}  # names the code does not bind -> what they denote
        self._protected_cache: dict[str, tuple[bool, str]] = {}
        self._root: str | None = None
        self._imports: dict[str, bool] = {}
        self._effect_modules: dict[str, bool] = {}
        self._ns_checked: set[str] = set()
        self._call_of: dict[ast.AST, ast.Call] = {}  # a call's function node -> the call
        # node -> the attribute read from it (x.__class__.__name__); plain attributes are not recorded
        self._next_attr: dict[ast.AST, str] = {}

    # -- plumbing -------------------------------------------------------------

    def run(self, tree: ast.Module) -> None:
        binder = _Binder()
        binder.statements(tree.body, tree)
        self.binder = binder
        self.bindings = binder.names()  # membership: is the name bound anywhere in the code
        self.scopes.append(_Scope("module", node=tree, bindings=binder.bindings.get(tree, {})))
        for stmt in tree.body:
            self.visit(stmt)

    def visit(self, node: ast.AST) -> None:
        t = type(node)
        if t is _NAME:  # the commonest nodes, inline: a plain name read, a number, a short string
            if type(node.ctx) is _LOAD:
                name = node.id
                # check_name_load's own conditions: called only when it has something to do
                if name in _SPECIAL_NAMES or name[:1] == "_" or (
                        name in self.ns and name not in self.bindings and name not in self._ns_checked):
                    self.check_name_load(node, name)
                return
        elif t is _CONSTANT:
            value = node.value
            if type(value) is str and len(value) > 5 and _MAYBE_CODE.search(value):  # v_constant's own prefilter
                self.v_constant(node)
            return
        method = _DISPATCH.get(t)
        if method is None:
            self.generic(node)
        else:
            method(self, node)

    def v_binop(self, node: ast.BinOp) -> None:
        self.visit(node.left)
        self.visit(node.right)

    def v_compare(self, node: ast.Compare) -> None:
        self.visit(node.left)
        for comparator in node.comparators:
            self.visit(comparator)

    def v_expr(self, node: ast.Expr) -> None:
        self.visit(node.value)

    # Common nodes with nothing to judge of their own, their children visited as generic() would, without its
    # field lookups: return x, (a, b), [a, b], -x.
    def v_return(self, node: ast.Return) -> None:
        if node.value is not None:
            self.visit(node.value)

    def v_elts(self, node: ast.Tuple | ast.List | ast.Set) -> None:
        for elt in node.elts:
            self.visit(elt)

    def v_unaryop(self, node: ast.UnaryOp) -> None:
        self.visit(node.operand)

    def generic(self, node: ast.AST) -> None:
        cls = type(node)
        fields = _CHILD_FIELDS.get(cls)
        if fields is None:
            fields = _CHILD_FIELDS[cls] = tuple(f for f in cls._fields if f not in _LEAF_FIELDS)
        visit = self.visit
        for name in fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item)
            elif isinstance(value, ast.AST):
                visit(value)

    def add(self, node: ast.AST | None, decision: str, message: str, capability: str | None = None,
            instead: str = "", irreversible: bool = False) -> None:
        line = getattr(node, "lineno", None) if node is not None else None
        self.findings.append(Finding(decision, message, line, capability, instead, irreversible))

    def deny(self, node: ast.AST | None, message: str, instead: str = "") -> None:
        self.add(node, "deny", message, instead=instead)

    def ask(self, node: ast.AST | None, message: str, capability: str | None, instead: str = "",
            irreversible: bool = False) -> None:
        self.add(node, "ask", message, capability, instead, irreversible)

    def import_allowed(self, module: str) -> bool:
        got = self._imports.get(module)
        if got is None:
            got = self._imports[module] = self.policy.import_allowed(module)
        return got

    @property
    def root_dir(self) -> str:
        if self._root is None:
            self._root = self.policy.root()
        return self._root

    def snippet(self, node: ast.AST, limit: int = 60) -> str:
        try:
            text = ast.unparse(node)
        except Exception:  # noqa: BLE001 - only for messages
            return "this expression"
        return text if len(text) <= limit else text[: limit - 3] + "..."


# The rule for each kind of node, as plain functions (a table of the guard's bound methods would make each
# check a reference cycle, left for the garbage collector to find: ~0.5 ms per 200-line action).
_G = _Guard
_DISPATCH: dict[type, Callable[[_Guard, Any], None]] = {
    ast.Name: _G.v_name, ast.Attribute: _G.v_attribute, ast.Call: _G.v_call, ast.Constant: _G.v_constant,
    ast.Import: _G.v_import, ast.ImportFrom: _G.v_import_from, ast.Assign: _G.v_assign,
    ast.AugAssign: _G.v_augassign, ast.AnnAssign: _G.v_annassign, ast.Delete: _G.v_delete, ast.For: _G.v_for,
    ast.AsyncFor: _G.v_for, ast.With: _G.v_with, ast.AsyncWith: _G.v_with, ast.NamedExpr: _G.v_namedexpr,
    ast.FunctionDef: _G.v_function, ast.AsyncFunctionDef: _G.v_function, ast.Lambda: _G.v_lambda,
    ast.ClassDef: _G.v_class, ast.ListComp: _G.v_comp, ast.SetComp: _G.v_comp, ast.GeneratorExp: _G.v_comp,
    ast.DictComp: _G.v_comp, ast.Await: _G.v_await, ast.ExceptHandler: _G.v_handler, ast.Match: _G.v_match,
    ast.JoinedStr: _G.v_joinedstr, ast.Global: _G.v_global, ast.Subscript: _G.v_subscript, ast.Load: _noop,
    ast.Store: _noop, ast.Del: _noop, ast.BinOp: _G.v_binop, ast.Compare: _G.v_compare, ast.Expr: _G.v_expr,
    ast.Pass: _noop, ast.Break: _noop, ast.Continue: _noop, ast.Nonlocal: _noop, ast.Return: _G.v_return,
    ast.Tuple: _G.v_elts, ast.List: _G.v_elts, ast.Set: _G.v_elts, ast.UnaryOp: _G.v_unaryop,
}
