"""What the model is told about the user's variables, and what each step changed.

Summaries describe objects (types, shapes, schemas) without dumping data and
without computing anything expensive: they run before every model call.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Container, Mapping

# IPython's own names and the agent's tools are never the user's data.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def user_variables(ns: Mapping[str, Any], hidden: Container[str] = ()) -> dict[str, Any]:
    return {
        name: value
        for name, value in ns.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES and name not in hidden
    }


def describe(value: Any, limit: int = 120) -> str:
    """A one-line summary of an object, cheap whatever its size."""
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    type_name = type(value).__name__
    module = type(value).__module__ or ""
    if module.startswith("pandas") and type_name == "DataFrame":
        cols = ", ".join(f"{c}: {t}" for c, t in list(value.dtypes.astype(str).items())[:12])
        more = f", ... {value.shape[1] - 12} more" if value.shape[1] > 12 else ""
        return f"DataFrame {value.shape[0]} x {value.shape[1]} ({cols}{more})"
    if module.startswith("pandas") and type_name == "Series":
        return f"Series {len(value)} ({value.dtype}) name={value.name!r}"
    if module.startswith("numpy") and type_name == "ndarray":
        return f"ndarray shape={value.shape} dtype={value.dtype}"
    if isinstance(value, (bool, int, float, complex)) or value is None:
        return f"{type_name} = {value!r}"
    if isinstance(value, str):
        return f"str = {value!r}" if len(value) <= 60 else f"str of {len(value)} chars: {value[:40]!r}..."
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        sample = _short_repr(value if len(value) <= 5 else _head(value), 60)
        return f"{type_name} of {len(value)}: {sample}"
    if inspect.isclass(value) or callable(value) and inspect.isroutine(value):
        try:
            sig = str(inspect.signature(value))
        except (TypeError, ValueError):
            sig = "(...)"
        doc = (inspect.getdoc(value) or "").split("\n")[0]
        kind = "class" if inspect.isclass(value) else "function"
        return _clip(f"{kind} {getattr(value, '__name__', '?')}{sig}" + (f": {doc}" if doc else ""), limit)
    return _clip(f"{type_name}: {_short_repr(value, 60)}", limit)


def _head(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(list(value.items())[:5])
    return list(value)[:5]


def _short_repr(value: Any, limit: int) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the prompt
        text = f"<repr failed: {type(exc).__name__}>"
    return _clip(text.replace("\n", " "), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize(ns: Mapping[str, Any], hidden: Container[str] = (), budget_chars: int = 6000) -> str:
    """The 'Variables in the notebook' section of a task prompt."""
    variables = user_variables(ns, hidden)
    if not variables:
        return ""
    modules = sorted(n for n, v in variables.items() if isinstance(v, types.ModuleType))
    lines = [f"- {name}: {describe(v)}" for name, v in variables.items() if name not in modules]
    used = 0
    kept: list[str] = []
    for line in lines:
        if used + len(line) > budget_chars:
            break
        kept.append(line)
        used += len(line) + 1
    if len(kept) < len(lines):
        rest = [ln[2:].split(":")[0] for ln in lines[len(kept):]]
        kept.append(f"- and {len(rest)} more variables: {', '.join(rest[:30])}")
    if modules:
        kept.append(f"- imported modules: {', '.join(modules)}")
    return "Variables in the notebook (use them directly; they are live objects):\n" + "\n".join(kept)


Snapshot = dict[str, int]


def snapshot(ns: Mapping[str, Any], hidden: Container[str] = ()) -> Snapshot:
    return {name: id(value) for name, value in user_variables(ns, hidden).items()}


def diff(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    return {
        "created": [n for n in after if n not in before],
        "rebound": [n for n in after if n in before and after[n] != before[n]],
        "deleted": [n for n in before if n not in after],
    }


def format_diff(changes: Mapping[str, list[str]], ns: Mapping[str, Any]) -> str:
    lines = []
    for kind in ("created", "rebound"):
        for name in changes.get(kind, []):
            if name in ns:
                lines.append(f"{kind} {name}: {describe(ns[name])}")
    lines += [f"deleted {name}" for name in changes.get("deleted", [])]
    return "\n".join(lines)
