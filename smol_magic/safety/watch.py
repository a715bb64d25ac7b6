"""The user's data, watched by effect: what an action can reach, whether it changed it, and putting it back.

The guard reads the code, and code can reach an object by many names (``d = df``
one step, ``d.loc[0, 'a'] = 1`` the next; ``for f in [df]``; a lambda). So before
an action, the objects the user's data variables hold are found by identity
among the objects reachable from the names the action reads (through agent-made
names, containers, closures, defaults and the globals a function uses), and a
cheap snapshot of each is taken; after the action, ``Watch.changed`` says which
changed, and ``Watch.put_back`` restores one in place.

Snapshots, by kind (``Limits`` bounds them):
- pandas DataFrame/Series: a shallow copy. Under copy-on-write (pandas 3) it is a
  true snapshot that costs O(columns), and an unchanged frame is recognised by the
  identity of its blocks, without reading the data. (Without copy-on-write: a
  deep copy within the copy budget.)
- numpy arrays: a copy within the copy budget; beyond it a CRC32 of the bytes
  (a change is seen, but cannot be put back); beyond the hash budget, unchecked.
- lists, dicts, sets, deques, bytearrays: a shallow copy; their elements that are
  data are watched on their own, so a change deep inside is put back where it happened.

Not covered (the README says so): other objects (models, figures, connections,
instances of the user's classes), objects reachable only through modules or
through objects the walks do not enter, and data beyond the budgets.
"""

from __future__ import annotations

import functools
import types
import zlib
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Iterable, Mapping

_CONTAINERS = (list, dict, set, deque, bytearray)
_PASS_THROUGH = (tuple, frozenset)  # immutable: not watched, but what they hold is reachable
# Names that hand out the whole namespace: reading one reaches everything.
_EVERYTHING = frozenset({"globals", "locals", "vars", "eval", "exec", "__import__", "get_ipython", "__builtins__",
                         "__builtin__", "sys"})


@dataclass
class Limits:
    """Bounds on the work done around one action (injectable for tests)."""

    max_objects: int = 20_000  # objects visited by each walk; past it, every piece of the user's data is watched
    max_items: int = 2_000  # elements of one container that the walks enter
    max_watched: int = 200  # objects snapshotted per action (a frame's shallow copy costs ~0.1 ms)
    max_container: int = 100_000  # a longer list/dict/set is not snapshotted (unchecked)
    copy_bytes: int = 32 * 2**20  # arrays copied per action (and frames, without copy-on-write)
    hash_bytes: int = 512 * 2**20  # array bytes fingerprinted per action beyond the copies


class Kind(StrEnum):
    FRAME = "frame"
    ARRAY = "array"
    CONTAINER = "container"


@dataclass
class Watched:
    """One piece of the user's data an action can reach, with what it was before."""

    path: str  # how the user names it: "df", "frames['a']"
    owner: str  # the user's variable that holds it: "df", "frames"
    via: str  # the name the action reached it through
    value: Any
    kind: Kind
    saved: Any = None  # a snapshot that can restore it (None: only a fingerprint)
    print: Any = None  # what is compared after the action
    restorable: bool = True


@dataclass
class Watch:
    """The user's data one action can reach, snapshotted before it runs."""

    items: list[Watched] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # reachable but too big to check

    def changed(self) -> list[Watched]:
        out = []
        for item in self.items:
            try:
                if _changed(item):
                    out.append(item)
            except Exception:  # noqa: BLE001 - an object that cannot be compared is reported as changed
                out.append(item)
        return out

    def put_back(self, item: Watched) -> bool:
        """Restore ``item`` in place from its snapshot; False when it cannot be."""
        if not item.restorable:
            return False
        try:
            _restore(item)
        except Exception:  # noqa: BLE001
            return False
        try:
            return not _changed(item)
        except Exception:  # noqa: BLE001
            return False


# -- which objects are the user's data ---------------------------------------------------------


_KINDS: dict[type, Kind | None] = {}


def _kind(value: Any) -> Kind | None:
    cls = type(value)
    try:
        return _KINDS[cls]
    except KeyError:
        pass
    module = cls.__module__ or ""
    if module.startswith("pandas") and hasattr(cls, "_update_inplace") and hasattr(cls, "equals"):
        kind: Kind | None = Kind.FRAME
    elif module.startswith("numpy") and cls.__name__ == "ndarray":
        kind = Kind.ARRAY
    elif issubclass(cls, _CONTAINERS):
        kind = Kind.CONTAINER
    else:
        kind = None
    _KINDS[cls] = kind
    return kind


def _elements(value: Any, limit: int) -> Iterable[tuple[str, Any]]:
    """What a container holds, with how to name it: ``[0]``, ``['a']``."""
    if isinstance(value, dict):
        items: Iterable = ((f"[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple, deque)):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, (set, frozenset)):
        items = (("(an element)", v) for v in value)
    else:
        return ()
    out = []
    for n, pair in enumerate(items):
        if n >= limit:
            break
        out.append(pair)
    return out


def _own_object(value: Any, module: str | None) -> bool:
    """An instance of a class defined in the notebook (or a SimpleNamespace): its attributes are entered."""
    return isinstance(value, types.SimpleNamespace) or (
        module is not None and type(value).__module__ == module and hasattr(value, "__dict__")
        and not isinstance(value, type))


def user_data(variables: Mapping[str, Any], limits: Limits,
              module: str | None = None) -> dict[int, tuple[str, str, Any]]:
    """id -> (path, owner, object) for the user's data: the variables, what their containers hold, array
    bases, and the attributes of objects of the notebook's own classes (``module``: the namespace's ``__name__``)."""
    found: dict[int, tuple[str, str, Any]] = {}
    todo: deque[tuple[str, str, Any, int]] = deque((name, name, value, 0) for name, value in variables.items())
    visited = 0
    while todo and visited < limits.max_objects:
        path, owner, value, depth = todo.popleft()
        visited += 1
        kind = _kind(value)
        if kind is not None and id(value) not in found:
            found[id(value)] = (path, owner, value)
        elif kind is not None:
            continue
        if kind is Kind.ARRAY:
            base = value.base
            if base is not None and _kind(base) is Kind.ARRAY:
                todo.append((f"{path} (the array it views)", owner, base, depth + 1))
        elif depth >= 3:
            continue
        elif kind is Kind.CONTAINER or isinstance(value, _PASS_THROUGH):
            for label, element in _elements(value, limits.max_items):
                if _kind(element) is not None or isinstance(element, _PASS_THROUGH) or _own_object(element, module):
                    todo.append((path + label, owner, element, depth + 1))
        elif _own_object(value, module):
            for attr, element in list(vars(value).items())[:limits.max_items]:
                if _kind(element) is not None or isinstance(element, _PASS_THROUGH):
                    todo.append((f"{path}.{attr}", owner, element, depth + 1))
    return found


# -- what an action can reach ------------------------------------------------------------------


def _code_globals(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_globals(const)
    return names


def _neighbours(value: Any, ns: Mapping[str, Any], limits: Limits) -> Iterable[Any]:
    """The objects an action can get to from ``value`` without naming anything else of the namespace."""
    kind = _kind(value)
    if kind is Kind.FRAME:
        return ()
    if kind is Kind.ARRAY:
        return (value.base,) if value.base is not None else ()
    if kind is Kind.CONTAINER or isinstance(value, _PASS_THROUGH):
        if isinstance(value, dict):
            return [v for _, v in zip(range(limits.max_items), value.values())]
        return [v for _, v in zip(range(limits.max_items), value)] if not isinstance(value, bytearray) else ()
    if isinstance(value, (types.FunctionType, types.LambdaType)):
        out = [c.cell_contents for c in value.__closure__ or () if _filled(c)]
        out += list(value.__defaults__ or ()) + list((value.__kwdefaults__ or {}).values())
        if value.__globals__ is ns:  # a function of this notebook: the globals it uses
            out += [ns[n] for n in _code_globals(value.__code__) if n in ns]
        return out
    if isinstance(value, types.MethodType):
        return (value.__func__, value.__self__)
    if isinstance(value, functools.partial):
        return [value.func, *value.args, *value.keywords.values()]
    if isinstance(value, memoryview):
        return (value.obj,)
    if isinstance(value, type):
        return list(vars(value).values()) if value.__module__ == ns.get("__name__") else ()
    if isinstance(value, types.SimpleNamespace) or type(value).__module__ == ns.get("__name__"):
        try:
            return list(vars(value).values()) + [type(value)]
        except TypeError:
            return ()
    if isinstance(value, (staticmethod, classmethod)):
        return (value.__func__,)
    if isinstance(value, property):
        return (value.fget, value.fset)
    if callable(value) and hasattr(value, "__dict__"):  # a wrapper of a notebook function (a @tool, a decorator's)
        try:
            return [v for v in vars(value).values() if isinstance(v, types.FunctionType) and v.__globals__ is ns]
        except TypeError:
            return ()
    return ()


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def reach(names: Iterable[str], ns: Mapping[str, Any], limits: Limits) -> dict[int, str] | None:
    """id -> the read name it was reached through, for the data-like objects reachable from ``names``.

    None when the walk cannot be bounded (a name that hands out the whole namespace,
    or more objects than ``limits.max_objects``): then everything counts as reachable.
    """
    names = [n for n in names if n in ns or n in _EVERYTHING]
    if any(n in _EVERYTHING for n in names):
        return None
    found: dict[int, str] = {}
    seen: set[int] = set()
    for name in names:
        todo = [ns[name]]
        while todo:
            value = todo.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            if len(seen) > limits.max_objects:
                return None
            if _kind(value) is not None:
                found.setdefault(id(value), name)
            try:
                todo.extend(_neighbours(value, ns, limits))
            except Exception:  # noqa: BLE001 - an object that will not be walked is not entered
                continue
    return found


# -- snapshots ----------------------------------------------------------------------------------


@functools.cache
def copy_on_write() -> bool:
    """Is pandas copy-on-write on (always in pandas 3): is a shallow copy a snapshot?"""
    import pandas as pd

    frame = pd.DataFrame({"a": [1]})
    shallow = frame.copy(deep=False)
    frame.loc[0, "a"] = 2
    return int(shallow.loc[0, "a"]) == 1


def _frame_identity(value: Any) -> tuple:
    mgr = value._mgr
    return (mgr, tuple(b.values for b in getattr(mgr, "blocks", ())), tuple(mgr.axes))


def _frame_meta(value: Any) -> tuple:
    names = (tuple(value.index.names), tuple(getattr(value, "columns", value.index).names), getattr(value, "name", None))
    return names, dict(value.attrs)


def _same_meta(a: tuple, b: tuple) -> bool:
    """Names equal, and the same attrs (by identity: an attr may be an array, whose == is not a bool)."""
    (names_a, attrs_a), (names_b, attrs_b) = a, b
    if attrs_a.keys() != attrs_b.keys() or any(attrs_a[k] is not attrs_b[k] for k in attrs_a):
        return False
    try:
        return bool(names_a == names_b)
    except Exception:  # noqa: BLE001
        return False


def _nbytes(value: Any) -> int:
    try:
        if _kind(value) is Kind.FRAME:
            usage = value.memory_usage(deep=False)
            return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        return int(value.nbytes)
    except Exception:  # noqa: BLE001
        return 0


def watch(code_names: Iterable[str], ns: Mapping[str, Any],
          variables: Mapping[str, Any] | Callable[[], Mapping[str, Any]], limits: Limits | None = None) -> Watch:
    """Snapshot the user's data (``variables``: name -> value, or a function that gives them) that an
    action reading ``code_names`` can reach. An action that reaches nothing data-like costs one short walk."""
    limits = limits or Limits()
    result = Watch()
    reachable = reach(code_names, ns, limits)
    if not reachable and reachable is not None:
        return result
    targets = user_data(variables() if callable(variables) else variables, limits, ns.get("__name__"))
    if reachable is None:
        reached = {key: "(the whole namespace)" for key in targets}
    else:
        reached = {key: via for key, via in reachable.items() if key in targets}
    budget = {"copy": limits.copy_bytes, "hash": limits.hash_bytes, "container": limits.max_container}
    for n, (key, via) in enumerate(reached.items()):
        path, owner, value = targets[key]
        if n >= limits.max_watched:
            result.unchecked.append(path)
            continue
        item = Watched(path, owner, via, value, _kind(value))
        try:
            ok = _snapshot(item, budget)
        except Exception:  # noqa: BLE001 - what cannot be snapshotted is reported as unchecked
            ok = False
        (result.items.append(item) if ok else result.unchecked.append(path))
    return result


def _snapshot(item: Watched, budget: dict[str, int]) -> bool:
    value = item.value
    if item.kind is Kind.FRAME:
        if copy_on_write():
            item.saved = value.copy(deep=False)
        else:
            size = _nbytes(value)
            if size > budget["copy"]:
                return False
            budget["copy"] -= size
            item.saved = value.copy(deep=True)
        item.print = (_frame_identity(value), _frame_meta(value))
        return True
    if item.kind is Kind.ARRAY:
        size = int(value.nbytes)
        shape = (value.shape, value.dtype, value.strides)
        if size <= budget["copy"]:
            budget["copy"] -= size
            item.saved, item.print = value.copy(), shape
            return True
        if size <= budget["hash"] and value.flags.c_contiguous:
            budget["hash"] -= size
            item.print, item.restorable = (shape, zlib.crc32(memoryview(value).cast("B"))), False
            return True
        return False
    if len(value) > budget["container"]:
        return False
    if isinstance(value, dict):
        item.saved = list(value.items())
    elif isinstance(value, bytearray):
        item.saved = bytes(value)
    else:
        item.saved = list(value)
    return True


def _changed(item: Watched) -> bool:
    value = item.value
    if item.kind is Kind.FRAME:
        identity, meta = item.print
        if not _same_meta(_frame_meta(value), meta):
            return True
        now = _frame_identity(value)
        if now[0] is identity[0] and len(now[1]) == len(identity[1]) and all(
                a is b for a, b in zip(now[1] + now[2], identity[1] + identity[2])):
            return False  # the same blocks: under copy-on-write, nothing was written
        return not value.equals(item.saved) or type(value) is not type(item.saved)
    if item.kind is Kind.ARRAY:
        if item.restorable:
            shape = (value.shape, value.dtype, value.strides)
            if shape != item.print:
                return True
            import numpy

            return not numpy.array_equal(value, item.saved, equal_nan=value.dtype.kind in "fc")
        shape, crc = item.print
        return (value.shape, value.dtype, value.strides) != shape or \
            zlib.crc32(memoryview(value).cast("B")) != crc
    if isinstance(value, dict):
        now = list(value.items())
        return len(now) != len(item.saved) or any(
            k1 is not k2 and k1 != k2 or v1 is not v2 for (k1, v1), (k2, v2) in zip(now, item.saved))
    if isinstance(value, bytearray):
        return bytes(value) != item.saved
    now = list(value)
    if isinstance(value, set):
        return len(now) != len(item.saved) or any(x not in value for x in item.saved)
    return len(now) != len(item.saved) or any(a is not b for a, b in zip(now, item.saved))


def _restore(item: Watched) -> None:
    value = item.value
    if item.kind is Kind.FRAME:
        saved = item.saved.copy(deep=False) if copy_on_write() else item.saved.copy(deep=True)
        value._update_inplace(saved)
        names, attrs = item.print[1]
        value.attrs = attrs
        if hasattr(value, "name") and not hasattr(value, "columns"):
            value.name = names[2]
        value.index.names = list(names[0])
        if hasattr(value, "columns"):
            value.columns.names = list(names[1])
        item.print = (_frame_identity(value), item.print[1])
    elif item.kind is Kind.ARRAY:
        value[...] = item.saved
    elif isinstance(value, dict):
        value.clear()
        value.update(item.saved)
    elif isinstance(value, bytearray):
        value[:] = item.saved
    elif isinstance(value, (set, deque)):
        value.clear()
        value.update(item.saved) if isinstance(value, set) else value.extend(item.saved)
    else:
        value[:] = item.saved
