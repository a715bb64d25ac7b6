"""The package's shape: imports run one way, with no cycles, and the core needs no Jupyter.

``core/`` is the agent framework in plain Python. It may use the policies it
applies (``guard``, ``safety``, ``context``), which are plain Python too, but
never the edges (``export``, ``ui``, ``jupyter``) and nothing of Jupyter. Only
``jupyter/`` imports Jupyter at module level; ``ui`` and ``export`` may ask
IPython for a display inside a function, when it is already running.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(importlib.util.find_spec("smol_magic").origin).parent  # found, not imported: a cycle must not hide
JUPYTER = {"IPython", "ipykernel", "ipywidgets", "jupyter_client", "nbformat", "nbclient", "comm", "traitlets"}
PLAIN = ("core", "guard", "safety", "context", "store")  # may not import Jupyter at all, nor the edges
EDGES = ("export", "ui", "jupyter")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}


def imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for each import in ``name``, relative ones resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import guard` imports the module smol_magic.guard
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, id(node) in top))
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_walk_sees_the_whole_package():
    assert {"smol_magic.core.agents", "smol_magic.jupyter.magic", "smol_magic.export.notebook",
            "smol_magic.context.namespace", "smol_magic.ui.html"} <= set(MODULES)
    assert ("smol_magic.core.memory", True) in imports("smol_magic.core.agents")


def test_no_import_cycles():
    graph = {name: {m for m, _ in imports(name) if m in MODULES and m != name} for name in MODULES}
    # The package root re-exports the API and loads the Jupyter side lazily: only its module-level imports count.
    graph["smol_magic"] = {m for m, top in imports("smol_magic") if m in MODULES and top}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_imports_run_one_way():
    wrong = []
    for name in MODULES:
        for target, top in imports(name):
            root = target.split(".")[0]
            if layer(name) in PLAIN:
                if root in JUPYTER:
                    wrong.append(f"{name} imports {target} (no Jupyter in {layer(name)}/)")
                if root == "smol_magic" and layer(target) in EDGES:
                    wrong.append(f"{name} imports {target} ({layer(name)}/ never imports the edges)")
            elif layer(name) != "jupyter" and name != "smol_magic.__main__":
                if top and root in JUPYTER:
                    wrong.append(f"{name} imports {target} at module level (only jupyter/ may)")
                if top and layer(target) == "jupyter":
                    wrong.append(f"{name} imports {target} at module level (only jupyter/ may)")
            if layer(name) in ("export", "ui") and layer(target) == "jupyter":
                wrong.append(f"{name} imports {target} ({layer(name)}/ works without the kernel)")
    assert not wrong, "\n".join(wrong)


def test_a_plain_python_run_imports_nothing_of_jupyter():
    code = textwrap.dedent("""
        import sys
        from smol_magic import CodeAgent, ScriptedModel, tool

        @tool
        def double(x: int) -> int:
            '''Double a number.

            Args:
                x: the number
            '''
            return 2 * x

        agent = CodeAgent(tools=[double], model=ScriptedModel(["```python\\nfinal_answer(double(21))\\n```"]))
        print(agent.run("double 21"), type(agent.executor).__name__)
        print(sorted(m for m in sys.modules if m.split('.')[0] in {names!r}))
    """).format(names=sorted(JUPYTER - {"traitlets"}))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["42 LocalPythonExecutor", "[]"]


def test_load_ext_still_loads_the_jupyter_side(ip):
    assert "agent" in ip.magics_manager.magics["cell"]
    assert type(ip.magics_manager.registry["AgentMagics"]).__module__ == "smol_magic.jupyter.magic"
