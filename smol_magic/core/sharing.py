"""Sharing tools: ``to_dict`` / ``from_dict``, ``save`` to a folder, ``from_hub`` / ``load_tool``.

The layout is smolagents' (a Space holding ``tool.py``, ``requirements.txt`` and
``app.py``), so a tool made in a notebook can be pushed like theirs, and a tool
they published loads here (with the ``smolagents`` extra installed).

``tool.py`` is the tool's own source, made self-contained: the modules and
importable names it uses become import lines, and a notebook variable it uses is
refused with the name, since it would not exist where the tool is loaded.
Loading runs that file: ``from_hub`` refuses without ``trust_remote_code=True``
and shows the code it would run.
"""

from __future__ import annotations

import ast
import builtins
import dis
import importlib
import importlib.metadata
import inspect
import linecache
import os
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Callable

from ..safety import redact
from .interop import as_tools
from .tools import Tool, ToolDefinitionError, _FunctionTool


class ToolLoadError(ValueError):
    """A shared tool that cannot be loaded (untrusted, missing packages, no tool in the code)."""


def check_no_credential(text: str, what: str) -> None:
    """Refuse to share ``text`` that holds a credential: one of the environment's or the notebook's, or one
    written in it that begins as well-known keys do (``"sk-..."``, ``"hf_..."``). Whatever is saved may be
    pushed to the Hub."""
    spans = redact.current().spans(text)
    written = [] if spans else redact.prefixed_credentials(text)
    if spans or written:
        shown = text[spans[0][0]:spans[0][0] + 4] if spans else written[0][:4]
        raise ToolDefinitionError(f"{what} holds a credential ('{shown}...'), and whatever is saved may be published: "
                                  "read it from the environment where it runs (os.environ[...]) instead of writing it in")


# -- to_dict -------------------------------------------------------------------------


def to_dict(tool: Tool) -> dict[str, Any]:
    """``{"name", "code", "requirements"}``: the tool as a self-contained ``tool.py`` and what it needs."""
    if isinstance(tool, _FunctionTool):
        source = _function_source(tool._fn)
        names = _global_names(tool._fn.__code__)
        imports = _imports_for(names, tool._fn.__globals__, tool.name)
        body = f"from smol_magic import tool\n{imports}\n\n@tool\n{source}"
    elif type(tool).__module__.startswith("smol_magic."):
        raise ToolDefinitionError(f"tool {tool.name}: a {type(tool).__name__} (a converted or built-in tool) "
                                  "cannot be saved; save the tool it was made from")
    else:
        cls = type(tool)
        source, node = _class_source(cls)
        names: set[str] = set()
        for value in vars(cls).values():
            function = getattr(value, "__func__", value)
            if isinstance(function, types.FunctionType):
                names |= _global_names(function.__code__)
        names |= _class_level_names(node)
        namespace = sys.modules[cls.__module__].__dict__ if cls.__module__ in sys.modules else {}
        imports = _imports_for(names - {cls.__name__}, namespace, tool.name)
        body = f"{imports}\n\n\n{source}"
    code = body.strip() + "\n"
    check_no_credential(code, f"tool {tool.name}'s code")
    return {"name": tool.name, "code": code, "requirements": _requirements(code)}


def _function_source(fn: Callable[..., Any]) -> str:
    """The ``def`` of ``fn`` without its decorators (``@tool`` is written back by ``to_dict``)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise ToolDefinitionError(f"tool {fn.__name__}: its source code cannot be found; define it in a notebook "
                                  "cell or a .py file to save or share it") from exc
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    lines = source.splitlines()
    return "\n".join(lines[node.lineno - 1:node.end_lineno])


def _class_source(cls: type) -> tuple[str, ast.ClassDef]:
    """The class statement of ``cls``. In a notebook ``inspect`` cannot find a class (it has no file):
    the cell that defined it is found through its methods, whose code knows their cell."""
    candidates: list[str] = []
    try:
        candidates.append(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        for value in vars(cls).values():
            function = getattr(value, "__func__", value)
            if isinstance(function, types.FunctionType):
                lines = linecache.getlines(function.__code__.co_filename)
                if lines:
                    candidates.append("".join(lines))
    for text in candidates:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        found = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
        if found:
            node = found[-1]
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            source = textwrap.dedent("\n".join(text.splitlines()[start - 1:node.end_lineno]))
            return source, ast.parse(source).body[0]  # type: ignore[return-value]
    raise ToolDefinitionError(f"tool class {cls.__name__}: its source code cannot be found; define it in a "
                              "notebook cell or a .py file to save or share it")


def _global_names(code: types.CodeType) -> set[str]:
    """The global names a function's code reads (nested functions and comprehensions included)."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return {n for n in names if not hasattr(builtins, n)}


def _class_level_names(node: ast.ClassDef) -> set[str]:
    """Names read by the class statement itself (bases, decorators, attributes), outside its methods."""
    names: set[str] = set()
    parts: list[ast.AST] = [*node.bases, *node.decorator_list, *(k.value for k in node.keywords)]
    parts += [stmt for stmt in node.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assigned = {t.id for stmt in node.body if isinstance(stmt, (ast.Assign, ast.AnnAssign))
                for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]) if isinstance(t, ast.Name)}
    for part in parts:
        names |= {n.id for n in ast.walk(part) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in names - assigned if not hasattr(builtins, n)}


def _imports_for(names: set[str], namespace: dict[str, Any], tool_name: str) -> str:
    """Import lines that give ``tool.py`` the names it reads; a plain notebook variable is refused."""
    package = sys.modules.get("smol_magic")  # loaded already (it loads this module); not imported: no cycle
    lines, unknown = [], []
    for name in sorted(names):
        if name not in namespace:
            unknown.append(name)
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            module = value.__name__
            lines.append(f"import {module}" if module == name else f"import {module} as {name}")
            continue
        if package is not None and getattr(package, name, None) is value:
            lines.append(f"from smol_magic import {name}")
            continue
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
        if module and qualname and module != "__main__" and "." not in qualname and _importable(module, qualname, value):
            lines.append(f"from {module} import {qualname}" + (f" as {name}" if qualname != name else ""))
            continue
        unknown.append(name)
    if unknown:
        raise ToolDefinitionError(
            f"tool {tool_name} uses {', '.join(repr(n) for n in unknown)} from the notebook, which would not exist "
            "where the tool is loaded: define it inside the tool (or import it there)")
    return "\n".join(lines)


def _importable(module: str, qualname: str, value: Any) -> bool:
    try:
        return getattr(importlib.import_module(module), qualname, None) is value
    except Exception:  # noqa: BLE001 - not importable by that name
        return False


def _requirements(code: str) -> list[str]:
    """The distributions the code imports (``sklearn`` -> ``scikit-learn``), and smol-magic itself."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    found = {"smol-magic"}
    for root in roots - set(sys.stdlib_module_names) - {"smol_magic"}:
        found.add((distributions.get(root) or [root])[0])
    return sorted(found)


# -- from_dict / from_code ---------------------------------------------------------


def from_code(code: str, **kwargs: Any) -> Tool:
    """Run a ``tool.py`` and return the tool it defines: an ``@tool`` function, a Tool subclass
    (made with ``kwargs``), or a smolagents Tool subclass (converted)."""
    module = types.ModuleType("smol_magic_shared_tool")
    module.__file__ = "tool.py"
    try:
        exec(compile(code, "tool.py", "exec"), module.__dict__)
    except ModuleNotFoundError as exc:
        hint = " (a smolagents tool: pip install 'smol-magic[smolagents]')" if exc.name == "smolagents" else ""
        raise ToolLoadError(f"the tool's code imports {exc.name!r}, which is not installed{hint}: "
                            f"pip install {exc.name}") from exc
    made = [v for v in vars(module).values() if isinstance(v, Tool)]
    if made:
        if kwargs:
            raise ToolLoadError(f"tool {made[0].name} is a function tool: it takes no constructor arguments, "
                                f"got {', '.join(kwargs)}")
        return made[-1]
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and v.__module__ == module.__name__ and callable(getattr(v, "forward", None))]
    if not classes:
        raise ToolLoadError("no tool in the code: expected an @tool function or a Tool subclass in tool.py")
    return as_tools([classes[-1](**kwargs)])[0]


def from_dict(data: dict[str, Any], **kwargs: Any) -> Tool:
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ToolLoadError("Tool.from_dict needs a dict with the tool's 'code' (as tool.to_dict() makes)")
    return from_code(data["code"], **kwargs)


# -- save / load -----------------------------------------------------------------------

_APP = '''\
"""A page for the tool: a Hugging Face Space (sdk: gradio) runs this file."""

import gradio as gr

{import_line}

FIELDS = {{"string": gr.Textbox, "number": gr.Number, "boolean": gr.Checkbox}}


def field(name, spec):
    if spec["type"] == "integer":
        return gr.Number(label=name, precision=0)
    return FIELDS.get(spec["type"], gr.Textbox)(label=name)


gr.Interface(
    fn=shared_tool,
    inputs=[field(name, spec) for name, spec in shared_tool.inputs.items()],
    outputs=gr.Textbox(label="output"),
    title=shared_tool.name,
    description=shared_tool.description,
).launch()
'''


def save(tool: Tool, folder: str | os.PathLike, make_gradio_app: bool = True) -> Path:
    """Write ``tool.py`` (+ ``requirements.txt`` and ``app.py``) into ``folder``, ready to upload as a Space."""
    data = to_dict(tool)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "tool.py").write_text(data["code"], encoding="utf-8")
    (path / "requirements.txt").write_text("\n".join(data["requirements"]) + "\n", encoding="utf-8")
    if make_gradio_app:
        if isinstance(tool, _FunctionTool):
            import_line = f"from tool import {tool._fn.__name__} as shared_tool"
        else:
            import_line = f"from tool import {type(tool).__name__}\n\nshared_tool = {type(tool).__name__}()"
        (path / "app.py").write_text(_APP.format(import_line=import_line), encoding="utf-8")
    return path


def push_to_hub(tool: Tool, repo_id: str, *, token: str | None = None, private: bool | None = None,
                commit_message: str = "Upload tool", endpoint: str | None = None) -> str:
    """Publish the tool as a Space (``tool.py``, ``requirements.txt``, ``app.py``), as smolagents does;
    returns the commit's URL. Others load it with ``load_tool(repo_id, trust_remote_code=True)``."""
    return push_space(lambda folder: save(tool, folder), repo_id, token=token, private=private,
                      commit_message=commit_message, endpoint=endpoint)


def push_space(save_into: Callable[[str], Any], repo_id: str, *, token: str | None, private: bool | None,
               commit_message: str, endpoint: str | None) -> str:
    """Publish as a Space the files ``save_into(folder)`` writes (a tool's or an agent's); the commit's URL.
    What cannot be saved fails in ``save_into``, before anything is created on the Hub."""
    import tempfile

    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory() as folder:
        save_into(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
    repo = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    commit = api.create_commit(repo.repo_id, repo_type="space", commit_message=commit_message,
                               operations=[CommitOperationAdd(name, data) for name, data in sorted(files.items())])
    return commit.commit_url


def check_requirements(text: str, where: str) -> None:
    """Refuse, naming them, the packages a shared tool needs that are not installed here."""
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name = Requirement(line).name
        except InvalidRequirement:
            continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise ToolLoadError(f"{where} needs {', '.join(missing)}, not installed here: pip install {' '.join(missing)}")


def from_folder(folder: str | os.PathLike, **kwargs: Any) -> Tool:
    """A tool saved with ``tool.save(folder)`` (your own files: no trust flag needed)."""
    path = Path(folder)
    if not (path / "tool.py").is_file():
        raise ToolLoadError(f"{path} has no tool.py: give the folder a tool was saved to (tool.save(folder))")
    if (path / "requirements.txt").is_file():
        check_requirements((path / "requirements.txt").read_text(encoding="utf-8"), str(path))
    return from_code((path / "tool.py").read_text(encoding="utf-8"), **kwargs)


def from_hub(repo_id: str, trust_remote_code: bool = False, *, token: str | None = None,
             revision: str | None = None, repo_type: str = "space", cache_dir: str | os.PathLike | None = None,
             endpoint: str | None = None, **kwargs: Any) -> Tool:
    """A tool published on the Hugging Face Hub (a Space with ``tool.py``, as smolagents pushes them).

    Loading a tool runs its code here. Without ``trust_remote_code=True`` this
    refuses, and the error shows the code so it can be read first. ``HF_ENDPOINT``
    is read at each call (a notebook may set it after huggingface_hub was imported).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    where = dict(repo_type=repo_type, revision=revision, token=token, cache_dir=cache_dir,
                 endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None)
    try:
        code = Path(hf_hub_download(repo_id, "tool.py", **where)).read_text(encoding="utf-8")
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise ToolLoadError(f"{repo_id}: no such {repo_type} on the Hub (or it is private: pass token=...); "
                            f"check the name{' and revision' if revision else ''}") from exc
    except EntryNotFoundError as exc:
        raise ToolLoadError(f"{repo_id}: the {repo_type} has no tool.py, so it holds no shared tool "
                            "(tools are shared as Spaces with tool.py, by tool.save or smolagents' push_to_hub)") from exc
    if not trust_remote_code:
        raise ToolLoadError(
            f"Tool.from_hub({repo_id!r}) would run this code from the Hub ({repo_type} {repo_id}, tool.py):\n\n"
            f"{textwrap.indent(code.rstrip(), '    ')}\n\n"
            "Read it; if you trust it, load it with trust_remote_code=True.")
    try:
        requirements = Path(hf_hub_download(repo_id, "requirements.txt", **where)).read_text(encoding="utf-8")
    except EntryNotFoundError:
        requirements = ""
    check_requirements(requirements, f"tool {repo_id}")
    return from_code(code, **kwargs)


def load_tool(repo_id_or_path: str | os.PathLike, trust_remote_code: bool = False, **kwargs: Any) -> Tool:
    """A saved tool: from a local folder (``tool.save(folder)``) or from the Hub (``Tool.from_hub``)."""
    if Path(repo_id_or_path).is_dir():
        return from_folder(repo_id_or_path, **kwargs)
    return from_hub(str(repo_id_or_path), trust_remote_code=trust_remote_code, **kwargs)


def install(tool_class: type[Tool]) -> None:
    """Make these ``Tool`` methods (called by smol_magic/__init__.py, as the exporter is plugged into agents:
    tools.py stays free of the sharing and interop modules, which import it)."""
    from .interop import from_langchain

    tool_class.to_dict = to_dict  # type: ignore[attr-defined]
    tool_class.save = save  # type: ignore[attr-defined]
    tool_class.push_to_hub = push_to_hub  # type: ignore[attr-defined]
    tool_class.from_dict = staticmethod(from_dict)  # type: ignore[attr-defined]
    tool_class.from_code = staticmethod(from_code)  # type: ignore[attr-defined]
    tool_class.from_folder = staticmethod(from_folder)  # type: ignore[attr-defined]
    tool_class.from_hub = staticmethod(from_hub)  # type: ignore[attr-defined]
    tool_class.from_langchain = staticmethod(from_langchain)  # type: ignore[attr-defined]

