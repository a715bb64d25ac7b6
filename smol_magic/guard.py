"""A static policy over the AST of each action: allow, ask or deny, with reasons.

This is a policy, not a sandbox: it stops what a careless or confused model
might do in the user's kernel. It cannot stop a determined attacker; run
untrusted inputs in an isolated kernel (a container or VM) instead.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass, field

from .memory import Verdict

DEFAULT_AUTHORIZED_IMPORTS = [
    "math", "statistics", "datetime", "time", "re", "json", "collections", "itertools", "functools",
    "random", "string", "decimal", "fractions", "dataclasses", "typing", "textwrap", "io", "csv",
    "pandas", "numpy", "scipy", "matplotlib", "seaborn", "sklearn", "statsmodels", "plotly",
    "polars", "pyarrow",
]

# Never importable, whatever the user authorizes short of turning the guard off.
FORBIDDEN_MODULES = {
    "os", "sys", "subprocess", "importlib", "builtins", "ctypes", "socket", "shutil", "pty",
    "signal", "multiprocessing", "threading", "_thread", "inspect", "gc", "code", "codeop",
    "pickle", "marshal", "IPython", "ipykernel", "posix", "nt",
}
FORBIDDEN_CALLS = {
    "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "breakpoint",
    "input", "help", "exit", "quit", "get_ipython", "open_code",
}
FORBIDDEN_NAMES = {"__builtins__", "__loader__", "__spec__", "get_ipython"}
HARMLESS_DUNDERS = {"__name__", "__doc__", "__qualname__", "__version__", "__init__", "__module__"}


@dataclass
class Policy:
    authorized_imports: list[str] = field(default_factory=lambda: list(DEFAULT_AUTHORIZED_IMPORTS))
    enabled: bool = True

    def import_allowed(self, module: str) -> bool:
        if module.split(".")[0] in FORBIDDEN_MODULES:
            return False
        # Authorizing a package authorizes its submodules; fnmatch handles "pkg.*" and "*".
        return any(
            fnmatch.fnmatchcase(module, pattern) or module.startswith(pattern + ".")
            for pattern in self.authorized_imports
        )


def check(code: str, policy: Policy | None = None) -> Verdict:
    """Judge one action before it runs."""
    policy = policy or Policy()
    if not policy.enabled:
        return Verdict("allow", ["the guard is off for this cell"])
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        escape = _ipython_escape(code)
        return Verdict("deny", [escape or f"the code does not parse: {exc.msg} (line {exc.lineno})"])
    visitor = _Visitor(policy)
    visitor.visit(tree)
    if visitor.denials:
        return Verdict("deny", _unique(visitor.denials))
    return Verdict("allow", [])


def _ipython_escape(code: str) -> str | None:
    for line in code.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("!"):
            return f"shell commands are not allowed in agent code: {stripped[:60]!r}"
        if stripped.startswith("%"):
            return f"IPython magics are not allowed in agent code: {stripped[:60]!r}"
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, policy: Policy):
        self.policy = policy
        self.denials: list[str] = []
        self.async_depth = 0

    def _deny(self, node: ast.AST, why: str) -> None:
        line = getattr(node, "lineno", None)
        self.denials.append(f"line {line}: {why}" if line else why)

    def _check_module(self, node: ast.AST, module: str) -> None:
        if not self.policy.import_allowed(module):
            root = module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                self._deny(node, f"import of {module!r} is forbidden (process, OS or interpreter access)")
            else:
                self._deny(
                    node,
                    f"import of {module!r} is not authorized; authorized: "
                    f"{', '.join(sorted(self.policy.authorized_imports))} "
                    "(the user can add it with --imports)",
                )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._deny(node, "relative imports are not allowed")
        elif node.module:
            self._check_module(node, node.module)
            for alias in node.names:
                if alias.name in FORBIDDEN_MODULES:
                    self._deny(node, f"import of {alias.name!r} is forbidden")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES or node.id in FORBIDDEN_CALLS:
            self._deny(node, f"{node.id!r} is not allowed in agent code")
        elif _is_dunder(node.id) and node.id not in HARMLESS_DUNDERS:
            self._deny(node, f"the dunder name {node.id!r} is not allowed")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_dunder(node.attr) and not self._harmless_dunder(node):
            self._deny(node, f"access to the dunder attribute {node.attr!r} is not allowed")
        self.generic_visit(node)

    def _harmless_dunder(self, node: ast.Attribute) -> bool:
        if node.attr == "__init__":
            # super().__init__(...) in a class body is ordinary code.
            value = node.value
            return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"
        return node.attr in HARMLESS_DUNDERS and isinstance(node.ctx, ast.Load)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr", "hasattr"):
            if len(node.args) >= 2:
                name = node.args[1]
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    self._deny(node, f"{node.func.id}() with a computed attribute name cannot be checked")
                elif _is_dunder(name.value) and name.value not in HARMLESS_DUNDERS:
                    self._deny(node, f"{node.func.id}() on the dunder attribute {name.value!r} is not allowed")
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.async_depth += 1
        self.generic_visit(node)
        self.async_depth -= 1

    def visit_Await(self, node: ast.Await) -> None:
        if not self.async_depth:
            self._deny(node, "top-level await is not supported in agent code")
        self.generic_visit(node)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
