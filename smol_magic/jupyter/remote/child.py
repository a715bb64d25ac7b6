"""The helper a child kernel runs once at start, and the packing of variables both sides share.

This module is self-contained on purpose (standard library only; pyarrow,
pandas and polars when present): its source is sent as code into a kernel
that may not have smol-magic installed (a remote gateway kernel), and run
there as the module ``smol_magic_child``; the notebook's side imports it as an
ordinary module for ``pack``/``unpack``. In the kernel it binds one hidden
object, ``__smol__`` (a ``Child``), which:

- reports after each action which names were created, rebound or deleted,
  with a summary of each for the model's prompt (smol-magic's own summaries
  when it is importable there, a plain one otherwise);
- receives variables and packs them for the trip back (``pack``/``unpack``);
- defines ``final_answer`` and a stub per tool, which asks the notebook's
  kernel to run the tool (through ``input()``: the stdin channel).

Helper requests end by setting ``__smol__.out``; the request's
``user_expressions`` read it back with ``__smol__.take()`` as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import uuid
from typing import Any

TOOL_MARK = "\x00smol-magic-tool:"  # the prompt of an input_request that is a tool call
FINAL_ANSWER = "SmolMagicFinalAnswer"  # the exception final_answer raises in the kernel
INLINE_BYTES = 64 * 1024  # smaller packets travel inside the request even when a shared folder exists
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_TABLES = {("pandas", "DataFrame"): "pandas", ("polars", "DataFrame"): "polars", ("pyarrow", "Table"): "pyarrow"}


class SmolMagicFinalAnswer(Exception):
    """Raised by ``final_answer`` in the kernel: the action ends, the value is kept for the report."""


class Raw:
    """An object whose repr is the given text: a user expression's result arrives as exactly that text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


# -- packing (both sides) ---------------------------------------------------------------------------


def _table_library(value: Any) -> str | None:
    for cls in type(value).__mro__:
        library = _TABLES.get(((cls.__module__ or "").split(".")[0], cls.__name__))
        if library is not None:
            return library
    return None


def _arrow_table(value: Any, library: str) -> Any:
    import pyarrow as pa

    if library == "pandas":
        return pa.Table.from_pandas(value)
    if library == "polars":
        return value.to_arrow()
    return value


def pack(name: str, value: Any, folder: str | None = None) -> dict[str, Any]:
    """``value`` as a message: Arrow IPC for pandas/polars/pyarrow tables (when pyarrow is here), else pickle.

    With ``folder`` (a place both sides read, e.g. /dev/shm), a big packet is a file there that the
    receiver memory-maps; without, its bytes travel inline (base64). Raises what pickling raises.
    """
    library = _table_library(value)
    message: dict[str, Any] = {"name": name, "type": type(value).__name__, "format": "pickle", "library": library,
                               "path": None, "data": None, "nbytes": 0}
    data: Any = None
    if library is not None:
        try:
            import pyarrow as pa

            table = _arrow_table(value, library)
            message["format"] = "arrow"
            if folder is not None:
                path = os.path.join(folder, f"{uuid.uuid4().hex}.arrow")
                with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)
                message["path"], message["nbytes"] = path, os.path.getsize(path)
                return message
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            data = sink.getvalue()
        except ImportError:
            message["format"] = "pickle"
        except Exception:  # noqa: BLE001 - a frame Arrow cannot hold (mixed object columns) goes as a pickle
            message["format"] = "pickle"
    if message["format"] == "pickle":
        data = pickle.dumps(value, protocol=5)
    message["nbytes"] = len(data) if not hasattr(data, "size") else data.size
    if folder is not None and message["nbytes"] > INLINE_BYTES:
        path = os.path.join(folder, f"{uuid.uuid4().hex}.{message['format']}")
        with open(path, "wb") as f:
            f.write(data)
        message["path"] = path
    else:
        message["data"] = base64.b64encode(memoryview(data)).decode("ascii")
    return message


def unpack(message: dict[str, Any]) -> Any:
    """The object of a ``pack`` message; a file packet is removed once read (a mapped one stays valid)."""
    path = message.get("path")
    if message["format"] == "arrow":
        import pyarrow as pa

        if path is not None:
            if message.get("library") == "pandas":
                try:
                    return _pandas_mapped(path)
                except Exception:  # noqa: BLE001 - an unusual frame: the plain conversion below
                    pass
                finally:
                    _remove(path)
            table = pa.ipc.open_file(pa.memory_map(path, "r")).read_all()  # zero-copy: the buffers are the file's
            _remove(path)
        else:
            table = pa.ipc.open_file(pa.py_buffer(base64.b64decode(message["data"]))).read_all()
        library = message.get("library")
        if library == "pandas":
            return table.to_pandas()
        if library == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table
    if path is not None:
        with open(path, "rb") as f:
            data = f.read()
        _remove(path)
    else:
        data = base64.b64decode(message["data"])
    return pickle.loads(data)


def _pandas_mapped(path: str) -> Any:
    """A pandas frame whose numeric columns are the file's memory, mapped copy-on-write: no copy, yet writable.

    Arrow's zero-copy conversion gives read-only arrays (pandas then refuses in-place writes); here
    the file is mapped privately (``ACCESS_COPY``), so a page is copied only when code writes to it,
    and never reaches the file. Columns that cannot be so (nulls, several chunks) are copied.
    """
    import mmap

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    buffer = pa.py_buffer(mapped)
    table = pa.ipc.open_file(pa.BufferReader(buffer)).read_all()
    frame = table.to_pandas(split_blocks=True)
    columns = {}
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        if isinstance(column.dtype, np.dtype):
            values = column.to_numpy()
            index = table.schema.get_field_index(str(frame.columns[i]))
            chunks = table.column(index).chunks if index >= 0 else []
            kind = chunks[0].type if len(chunks) == 1 else None
            fixed = kind is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                          or (pa.types.is_timestamp(kind) and kind.tz is None))
            if fixed and chunks[0].null_count == 0 and values.dtype.itemsize == kind.bit_width // 8:
                start = chunks[0].buffers()[1].address + chunks[0].offset * values.itemsize - buffer.address
                values = np.frombuffer(mapped, dtype=values.dtype, count=len(chunks[0]), offset=start)
            else:
                values = values.copy()
            columns[i] = values
        elif getattr(column.dtype, "storage", None) == "pyarrow" or type(column.dtype).__name__ == "ArrowDtype":
            columns[i] = column.array  # Arrow-backed: immutable, changes make new arrays
        else:
            columns[i] = column.array.copy()  # categoricals, masked arrays: their own writable copy
    result = pd.DataFrame(columns, index=frame.index, copy=False)
    result.columns = frame.columns
    result.attrs = dict(frame.attrs)
    return result


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- summaries --------------------------------------------------------------------------------------


def _plain_description(name: str, value: Any) -> str:
    """A summary without smol-magic: the type, the shape or length, the columns, a short repr."""
    kind = type(value).__name__
    parts = [kind]
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        parts.append(" x ".join(str(s) for s in shape))
    else:
        try:
            parts.append(f"{len(value)} items")
        except Exception:  # noqa: BLE001 - a summary only
            pass
    head = ", ".join(parts)
    columns = getattr(value, "columns", None)
    if columns is not None:
        try:
            head += f"; columns: {', '.join(map(str, list(columns)[:30]))}"
        except Exception:  # noqa: BLE001
            pass
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001
        text = f"(repr failed: {type(exc).__name__})"
    text = text if len(text) <= 150 else text[:150] + "..."
    return f"{head}: {text}" if columns is None else head


def _module_name(value: Any) -> str | None:
    """A module's real name (``pd`` is ``pandas``): the notebook's guard then knows what its functions do."""
    return getattr(value, "__name__", None) if type(value).__name__ == "module" else None


# -- the kernel's side -------------------------------------------------------------------------------


class Child:
    """``__smol__`` in the kernel: reports, receives, sends back, and calls tools through the notebook."""

    def __init__(self, shell: Any, scratch: str | None = None, describe: bool = True):
        self.shell = shell
        self.ns = shell.user_ns
        self.scratch = scratch
        self.hidden = set(self.ns) | {"__smol__", "final_answer"}  # what was there before any action
        self.before: dict[str, Any] = {}
        self.answer: Any = None
        self.has_answer = False
        self.out: Any = None
        self.tools: list[str] = []
        self.describe = _plain_description
        if describe:
            try:
                from smol_magic.context.namespace import named_description

                self.describe = named_description
            except Exception:  # noqa: BLE001 - not installed there: the plain summary
                pass
        self.ns["final_answer"] = self.final_answer
        shell.set_custom_exc((SmolMagicFinalAnswer,), self._final_answer_raised)
        for magic, arg in (("xmode", "Plain"), ("colors", "nocolor")):
            try:
                shell.run_line_magic(magic, arg)
            except Exception:  # noqa: BLE001 - tracebacks are only plainer with it
                pass

    def final_answer(self, answer: Any) -> None:
        """Give the final answer to the task (ends the run)."""
        self.answer, self.has_answer = answer, True
        raise SmolMagicFinalAnswer()

    def _final_answer_raised(self, shell: Any, etype: Any, value: Any, tb: Any, tb_offset: Any = None) -> None:
        return None  # no traceback: the report carries the answer

    def take(self) -> Raw:
        out, self.out = self.out, None
        return Raw(json.dumps(out, default=str))

    def variables(self) -> dict[str, Any]:
        return {n: v for n, v in self.ns.items()
                if n[:1] != "_" and n not in IPYTHON_NAMES and n not in self.hidden}

    def _text(self, name: str, value: Any) -> str:
        try:
            return self.describe(name, value)
        except Exception as exc:  # noqa: BLE001 - a summary must not fail the report
            return f"{type(value).__name__} (could not summarise: {type(exc).__name__})"

    def value_text(self, name: str, limit: int) -> None:
        """A tool call's result as the model reads it: a string as it is, anything else as its repr."""
        value = self.ns.get(name)
        try:
            text, is_str = (value, True) if isinstance(value, str) else (repr(value), False)
        except Exception as exc:  # noqa: BLE001 - a broken repr is an observation, not a failure
            text, is_str = f"(repr failed: {type(exc).__name__}: {exc})", False
        self.out = {"text": text[:limit], "str": is_str}

    def report_raw(self, refresh: tuple[str, ...] = ()) -> Raw:
        """The report as a user expression's result (after an action)."""
        return Raw(json.dumps(self.report(False, refresh), default=str))

    def report(self, full: bool = False, refresh: tuple[str, ...] = ()) -> dict[str, Any]:
        """What the last action changed (all variables when ``full``), with summaries, and its final answer."""
        now = self.variables()
        before = {} if full else self.before
        created = [n for n in now if n not in before]
        rebound = [n for n in now if n in before and now[n] is not before[n]]
        deleted = [n for n in before if n not in now]
        described = created + rebound + [n for n in refresh if n in now and n in before and now[n] is before[n]]
        self.before = now
        out: dict[str, Any] = {
            "pid": os.getpid(),
            "changes": {"created": created, "rebound": rebound, "deleted": deleted},
            "vars": {n: [type(now[n]).__name__, self._text(n, now[n]), id(now[n]), _module_name(now[n])]
                     for n in described},
        }
        if self.has_answer:
            answer, self.answer, self.has_answer = self.answer, None, False
            try:
                out["answer"] = pack("final_answer", answer, self.scratch)
            except Exception as exc:  # noqa: BLE001 - unpicklable: its text comes back instead
                text = repr(answer)
                out["answer"] = pack("final_answer", text, None) | {"text": text, "error": str(exc)}
        return out

    def receive(self, messages: list[dict[str, Any]]) -> None:
        """Bind the variables sent in; the reply says which failed, and reports what is here now."""
        failed = {}
        for message in messages:
            try:
                self.ns[message["name"]] = unpack(message)
            except Exception as exc:  # noqa: BLE001 - said by name to the notebook
                failed[message["name"]] = f"{type(exc).__name__}: {exc}"
        self.out = {"failed": failed, "report": self.report()}

    def send_back(self, name: str) -> None:
        if name not in self.ns:
            self.out = {"error": f"there is no variable {name!r} in the kernel"}
            return
        try:
            self.out = {"packet": pack(name, self.ns[name], self.scratch)}
        except Exception as exc:  # noqa: BLE001
            self.out = {"error": f"a {type(self.ns[name]).__name__} could not be packed ({type(exc).__name__}: {exc})"}

    def set_tools(self, names: list[str]) -> None:
        for name in self.tools:
            if name != "final_answer":
                self.ns.pop(name, None)
                self.hidden.discard(name)
        self.tools = [n for n in names if n != "final_answer"]
        for name in self.tools:
            self.ns[name] = self._tool(name)
            self.hidden.add(name)
        self.out = {"tools": self.tools}

    def _tool(self, name: str) -> Any:
        child = self

        def call(*args: Any, **kwargs: Any) -> Any:
            request = {"tool": name, "args": pack("args", (args, kwargs), child.scratch)}
            reply = json.loads(input(TOOL_MARK + json.dumps(request)))
            if "error" in reply:
                raise RuntimeError(f"the tool {name} failed: {reply['error']}")
            return unpack(reply["value"])

        call.__name__ = call.__qualname__ = name
        call.__doc__ = f"The notebook's tool {name!r}: it runs in the notebook's kernel."
        return call


# -- the code sent (built on the notebook's side) ---------------------------------------------------


def _source() -> str:
    with open(__file__, encoding="utf-8") as f:
        return f.read()


def bootstrap_code(describe_with_smol_magic: bool = True, scratch: str | None = None, setup: str = "",
                   tools: list[str] | None = None) -> str:
    """Code that makes ``__smol__`` in a fresh kernel (this module's source, run as ``smol_magic_child``)."""
    return (
        "def __smol_boot():\n"
        "    import sys, types\n"
        f"{_indent(setup)}"
        "    module = types.ModuleType('smol_magic_child')\n"
        "    sys.modules['smol_magic_child'] = module\n"
        f"    exec(compile({_source()!r}, '<smol-magic-child>', 'exec'), module.__dict__)\n"
        f"    return module.Child(get_ipython(), scratch={scratch!r}, describe={describe_with_smol_magic!r})\n"
        "__smol__ = __smol_boot()\n"
        "del __smol_boot\n"
        f"__smol__.set_tools({list(tools or [])!r})\n"
        "__smol__.out = {'pid': __import__('os').getpid()}\n"
    )


def _indent(code: str) -> str:
    return "".join(f"    {line}\n" for line in code.splitlines())


def tools_code(names: list[str]) -> str:
    return f"__smol__.set_tools({names!r})"


def receive_code(messages: list[dict[str, Any]]) -> str:
    return f"__smol__.receive({messages!r})"


def pack_code(name: str) -> str:
    return f"__smol__.send_back({name!r})"


def value_text_code(name: str, limit: int) -> str:
    return f"__smol__.value_text({name!r}, {int(limit)})"


def report_code(full: bool = False) -> str:
    return f"__smol__.out = __smol__.report({full!r})"


def report_expression(refresh: list[str]) -> str:
    return f"__smol__.report_raw({tuple(refresh)!r})"


TAKE = "__smol__.take()"  # the user expression that reads a helper request's ``out``
