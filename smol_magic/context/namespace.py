"""What the model is told about the user's variables, and what each step changed.

Summaries describe objects (types, shapes, schemas, a few rows) without
dumping data and without computing anything expensive: they are built before
every run and after every step, on whatever the notebook holds. Concretely:

- pandas: shape, columns with dtypes, index kind, ``memory_usage(deep=False)``
  (O(columns); ``deep=True`` would be O(rows) on object columns), the first 3
  rows (at most 8 columns, cells and lines clipped), and null counts only when
  the frame has at most ``NULL_COUNT_MAX_CELLS`` cells (``isna()`` is O(cells)).
- polars, pyarrow, Dask, PySpark: recognised by the module their class comes
  from, so none of them is imported here. Lazy frames stay lazy: a polars
  ``LazyFrame`` shows ``collect_schema()`` (plan resolution, no data), a Dask
  frame its ``_meta`` dtypes and partitions, a Spark frame and a pyarrow
  ``Dataset`` their schema; their row counts are never computed.
- numpy arrays: shape, dtype, bytes; scalars and short strings: the value;
  long strings and containers: type, length, a short sample; functions and
  classes: signature and first docstring line; modules: by name only; anything
  else: its type and a clipped repr.

Every summary has a *headline* (its first line: used in the per-step diff, in
``{name}`` interpolation and when the prompt's budget is tight) and optional
detail lines, shown when the budget allows.

Your own types: register a summary with ``describe.register`` (this is
``functools.singledispatch``, so a registration covers subclasses and wins
over the built-in summaries)::

    from smol_magic import describe

    @describe.register(Portfolio)
    def _(p: Portfolio) -> str:
        return f"Portfolio of {len(p.positions)} positions\\nholdings: {', '.join(p.tickers[:10])}"

    describe.register(Order, lambda o: f"Order {o.id} ({o.status})")   # or without a decorator

The function returns a string: first line the headline, the rest details.
``describe(value)`` returns the full summary of any object.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import weakref
from collections import ChainMap, deque
from collections.abc import Mapping, Sequence, Set
from itertools import chain, compress, filterfalse, islice, repeat
import operator
from operator import is_not
from typing import Any, Callable, Container, Iterable

from ..core.text import clip
from ..guard import IPYTHON_NAMES  # IPython's own names are never the user's data
from ..safety import redact

DEFAULT_BUDGET_TOKENS = 1500
CHARS_PER_TOKEN = 4  # token estimate: characters / 4, close enough for English text and code
HEADLINE_CHARS = 200
COLUMNS_IN_HEADLINE_CHARS = 150
COLUMNS_IN_DETAILS_CHARS = 2000
LINE_CHARS = 160
SAMPLE_ROWS = 3
SAMPLE_COLUMNS = 8
SAMPLE_VALUES = 5
NULL_COUNT_MAX_CELLS = 1_000_000
DIFF_MAX_LINES = 30
SHORT_STR = 80

_IDENT = re.compile(r"[^\W\d]\w*")
_MISSING = object()

# -- which variables ---------------------------------------------------------


def user_variables(ns: Mapping[str, Any], hidden: Container[str] = ()) -> dict[str, Any]:
    """The user's variables, in the namespace's (insertion) order.

    ``hidden`` names IPython's and the agent's own objects; when it is a
    mapping, a name is hidden only while it still holds the hidden object, so a
    user who rebinds ``exit`` or a tool's name sees their own variable.

    Every run starts with this walk over the whole namespace: a copy of it (at C speed) less the names
    that are not the user's; one regex finds the ``_`` names (``_private_names``), sets find the hidden ones,
    and only the few names that are also hidden ones are looked at one by one.
    """
    maps = _maps(hidden)
    out = dict(ns) if type(ns) is dict else {name: ns[name] for name in ns}
    for name in _private_names(out):
        out.pop(name, None)  # (a str subclass's key may not compare equal to the plain str found)
    if maps is None:
        if isinstance(hidden, (set, frozenset)) or not hidden:
            dropped: Iterable[str] = out.keys() & (IPYTHON_NAMES | hidden if hidden else IPYTHON_NAMES)
        else:  # another container: asked name by name
            dropped = [name for name in out if name in IPYTHON_NAMES or name in hidden]
    elif len(maps) > 1 and len(out) < 64:  # a few names (a step's): looked up in each map
        return {name: value for name, value in out.items()
                if name not in IPYTHON_NAMES and _visible(name, value, maps, hidden)}
    else:
        decided: set[str] = set()
        dropped = out.keys() & IPYTHON_NAMES
        for each in maps:  # the first map holding a name decides, as in the ChainMap
            common = (each.keys() & out.keys() if isinstance(each, dict) else {n for n in out if n in each}) - decided
            dropped.update(name for name in common if each[name] is out[name])
            decided |= common
    for name in dropped:
        del out[name]
    return out


_PRIVATE = re.compile(r"\n(_[^\n]*)")  # a name that starts with "_", in the names joined by newlines


def _private_names(names: Iterable[Any]) -> list[Any]:
    """The names that start with ``_`` (IPython's ``_i3``, ``_3``, ``__builtins__``, the user's ``_tmp``).

    Found by one regex search over the names joined by newlines, at C speed: a comprehension's ``name[:1]``
    per name is most of the time of listing 10,000 variables. Names that are not plain strings, or hold a
    newline, are looked at one by one."""
    names = list(names)
    try:
        joined = "\n" + "\n".join(names)
    except TypeError:  # a name that is no string (globals()[1] = ...)
        joined = None
    if joined is None or joined.count("\n") != len(names):
        return [name for name in names if str(name)[:1] == "_"]
    return _PRIVATE.findall(joined)


def still_bound(variables: dict[str, Any], ns: Mapping[str, Any], hidden: Container[str], bound: Iterable[str]
                ) -> dict[str, Any]:
    """``variables`` (an earlier ``user_variables(ns, ...)``) after only the names ``bound`` were bound (the
    tools and arguments sent to the namespace), judged again with ``hidden``: the user's variables now,
    without another walk over the whole namespace."""
    bound = [name for name in bound if name in variables]
    if not bound:
        return variables
    maps, now = _maps(hidden), dict(variables)
    for name in bound:
        value = ns.get(name, _MISSING)
        if value is _MISSING or not _visible(name, value, maps, hidden):
            del now[name]
        else:
            now[name] = value
    return now


def _maps(hidden: Container[str]) -> list[Mapping[str, Any]] | None:
    """The mappings behind ``hidden`` (a ChainMap's, in its order, each looked up at C speed), or None if it
    is no mapping. A ChainMap's own ``in`` and ``[]`` are Python code, ~20x slower than a dict's."""
    if isinstance(hidden, ChainMap):
        return [m for each in hidden.maps for m in (_maps(each) or [each])]
    if isinstance(hidden, Mapping):
        return [hidden]
    return None


def _visible(name: str, value: Any, maps: list[Mapping[str, Any]] | None, hidden: Container[str]) -> bool:
    """Whether ``name`` holding ``value`` is one of the user's variables (see ``user_variables``)."""
    if name[:1] == "_" or name in IPYTHON_NAMES:
        return False
    if maps is None:
        return name not in hidden
    for m in maps:  # the first map that has the name decides, as ChainMap's lookup does
        if name in m:
            return m[name] is not value
    return True


# -- one object --------------------------------------------------------------


@functools.singledispatch
def describe(value: Any) -> str:
    """The full summary of ``value``: a headline, then detail lines. Register your own with ``describe.register``."""
    head, details = _builtin_parts(value)
    return "\n".join([head, *details()])


_DEFAULT = describe.dispatch(object)


def headline(value: Any) -> str:
    """The one-line summary of ``value`` (cheap: details such as sample rows are not built)."""
    return _parts(value)[0]


def named_headline(name: str, value: Any) -> str:
    """``headline``, except for a credential (``token = "..."``): its type and length, never its value."""
    return _named_parts(name, value)[0]


def named_description(name: str, value: Any) -> str:
    """``describe``, except for a credential: its type and length, never its value."""
    head, details = _named_parts(name, value)
    return "\n".join([head, *details()])


def _named_parts(name: str, value: Any, known: redact.Secrets | None = None) -> tuple[str, Callable[[], list[str]]]:
    if redact.looks_like_secret(name, value) or redact.is_secret(value, known):
        return f"{type(value).__name__}, {len(value)} characters (looks like a secret: value not shown)", list
    return _parts(value)


_ATOMS = frozenset({int, float, bool, complex, str, bytes, type(None)})  # values that cannot change
_SHORT_ATOM = 256  # a str or bytes no longer than this is remembered with its headline
_SMALL = 8  # items: a list, tuple or dict this small, of such values, is remembered by its items
_HEADS: dict[str, tuple] = {}  # name -> (type, items, headline, registrations, secrets) last shown


def _summary_parts(name: str, value: Any, known: redact.Secrets) -> tuple[str, Callable[[], list[str]]]:
    """``_named_parts`` for the prompt's listing, which every run builds again for the same variables.

    The headline of a number, a short string, or a small list, tuple or dict of those is kept while the
    name holds the same type with the very same items (compared by identity: the cache holds the items,
    not the container, so they cannot be freed and their ids reused), no ``describe`` was registered and
    the known secrets are the same. Such a headline depends on nothing else.
    """
    kind = type(value)
    items = _items(value, kind)
    if items is None:
        return _named_parts(name, value, known)
    hit = _HEADS.get(name)
    registered = len(describe.registry)
    if (hit is not None and hit[0] is kind and len(hit[1]) == len(items) and all(map(operator.is_, hit[1], items))
            and hit[3] == registered and hit[4] is known):
        return hit[2], list
    head, details = _named_parts(name, value, known)
    if describe.dispatch(kind) is not _DEFAULT:  # a registered summary may have detail lines: not kept
        return head, details
    if len(_HEADS) >= 65_536:
        _HEADS.clear()
    _HEADS[name] = (kind, items, head, registered, known)
    return head, details


def _items(value: Any, kind: type) -> tuple | None:
    """``(value,)`` for an atom, the items of a small container of atoms (a dict's keys and values), or None."""
    if kind in _ATOMS:
        return (value,) if kind not in (str, bytes) or len(value) <= _SHORT_ATOM else None
    if kind is list or kind is tuple:
        items = tuple(value) if len(value) <= _SMALL else None
    elif kind is dict:
        items = tuple(chain.from_iterable(value.items())) if len(value) <= _SMALL else None
    else:
        return None
    if items is None or not _ATOMS.issuperset(map(type, items)):
        return None
    if any(len(item) > _SHORT_ATOM for item in items if type(item) in (str, bytes)):
        return None
    return items


def _parts(value: Any) -> tuple[str, Callable[[], list[str]]]:
    """(headline, a function giving the detail lines), from a registered summary or the built-in ones."""
    fn = describe.dispatch(type(value))
    if fn is _DEFAULT:
        return _builtin_parts(value)
    try:
        text = str(fn(value))
    except Exception as exc:  # a user's summary must not break the prompt
        head, details = _builtin_parts(value)
        return clip(f"{head} (its registered describe failed: {type(exc).__name__})", HEADLINE_CHARS), details
    lines = text.strip("\n").splitlines() or [type(value).__name__]
    return clip(lines[0], HEADLINE_CHARS), lambda: [clip(line, COLUMNS_IN_DETAILS_CHARS) for line in lines[1:30]]


def _builtin_parts(value: Any) -> tuple[str, Callable[[], list[str]]]:
    kind = _kind(type(value))
    if kind is None:
        return clip(_guarded(_plain_headline, value), HEADLINE_CHARS), list
    head_fn, details_fn = kind
    head = clip(_guarded(head_fn, value), HEADLINE_CHARS)
    if details_fn is None:
        return head, list

    def details() -> list[str]:
        try:
            return details_fn(value)
        except Exception as exc:
            return [f"(details unavailable: {type(exc).__name__})"]

    return head, details


def _guarded(fn: Callable[[Any], str], value: Any) -> str:
    try:
        return fn(value)
    except Exception as exc:  # a broken object must not break the prompt
        return f"{type(value).__name__} (could not summarise: {type(exc).__name__}: {clip(str(exc), 60)})"


# Built-in summaries for library types, keyed by (top-level package, class name) and found
# along the MRO: recognising a polars or Dask frame needs no import of polars or Dask.
_Kind = tuple[Callable[[Any], str], "Callable[[Any], list[str]] | None"]
_KINDS: dict[tuple[str, str], _Kind] = {}
_kind_cache: "weakref.WeakKeyDictionary[type, _Kind | None]" = weakref.WeakKeyDictionary()


def _kind(cls: type) -> _Kind | None:
    try:
        return _kind_cache[cls]
    except (KeyError, TypeError):
        pass
    found = None
    for base in cls.__mro__:
        key = ((getattr(base, "__module__", None) or "").partition(".")[0], base.__name__)
        if key in _KINDS:
            found = _KINDS[key]
            break
    try:
        _kind_cache[cls] = found
    except TypeError:
        pass
    return found


def _builtin(*keys: str, details: Callable[[Any], list[str]] | None = None) -> Callable:
    def register(head: Callable[[Any], str]) -> Callable[[Any], str]:
        for key in keys:
            package, _, name = key.partition(".")
            _KINDS[(package, name)] = (head, details)
        return head

    return register


# -- plain Python ------------------------------------------------------------


_CONTAINERS = frozenset({list, dict, tuple, set, frozenset, deque})


def _plain_headline(value: Any) -> str:
    type_name = type(value).__name__
    if type(value) in _CONTAINERS:  # the commonest first: the checks below (ABCs, inspect) cost microseconds
        return f"{type_name} of {len(value):,}: {_sample(value)}"
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"{type_name} of {value.bit_length()} bits"
    if value is None or isinstance(value, (bool, int, float, complex)):
        return f"{type_name} = {_repr(value, 80)}"
    if isinstance(value, str):
        if len(value) <= SHORT_STR:
            return f"str = {value!r}"
        return f"str of {len(value):,} chars: {_repr(value[:60], 70)}..."
    if isinstance(value, (bytes, bytearray)):
        return f"{type_name} of {len(value):,} bytes: {_repr(value[:40], 60)}" + ("..." if len(value) > 40 else "")
    if inspect.isclass(value) or inspect.isroutine(value):
        return _callable_headline(value)
    if isinstance(value, (Mapping, Set, Sequence, deque)):
        return f"{type_name} of {len(value):,}: {_sample(value)}"
    if type(value).__repr__ is object.__repr__:
        return f"{type_name} instance"
    return f"{type_name}: {_repr(value, 80)}"


def _callable_headline(value: Any) -> str:
    kind = "class" if inspect.isclass(value) else "function"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    try:
        sig = clip(str(inspect.signature(value)), 120)
    except (TypeError, ValueError):
        sig = "(...)"
    doc = getattr(value, "__doc__", None)  # not inspect.getdoc: a class without a docstring would show object's
    first = next((line.strip() for line in doc.splitlines() if line.strip()), "") if isinstance(doc, str) else ""
    return f"{kind} {name}{sig}" + (f": {first}" if first else "")


def _sample(value: Any) -> str:
    """The first few items of a container, each clipped: never the repr of a big container."""
    if type(value) is dict or isinstance(value, Mapping):
        items = [f"{_peek(k)}: {_peek(v)}" for k, v in islice(value.items(), SAMPLE_VALUES)]
        brackets = "{}"
    else:
        items = [_peek(v) for v in islice(value, SAMPLE_VALUES)]
        brackets = "()" if isinstance(value, tuple) else "{}" if isinstance(value, Set) else "[]"
    if len(value) > SAMPLE_VALUES:
        items.append("...")
    return clip(brackets[0] + ", ".join(items) + brackets[1], 120)


def _peek(value: Any) -> str:
    """A container item in a few characters."""
    if isinstance(value, str):
        return _repr(value[:40], 30)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<int of {value.bit_length()} bits>"
    if value is None or isinstance(value, (bool, int, float, complex, bytes)):
        return _repr(value, 30)
    if isinstance(value, (list, tuple, set, frozenset, dict, deque)):
        return f"<{type(value).__name__} of {len(value)}>"
    if describe.dispatch(type(value)) is not _DEFAULT or _kind(type(value)) is not None:
        return "<" + clip(headline(value), 50) + ">"
    return _repr(value, 30)


# -- shared helpers ----------------------------------------------------------


def _repr(value: Any, limit: int) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the prompt
        text = f"<repr failed: {type(exc).__name__}>"
    return clip(text.replace("\n", " "), limit)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _name(label: Any) -> str:
    """A column name as the model should write it: bare if an identifier, else quoted."""
    if isinstance(label, str):
        return label if label.isidentifier() else repr(label)
    return str(label)


def _listing(pairs: Iterable[tuple[Any, Any]], count: int, limit: int) -> tuple[str, int]:
    """'a: int64, b: str, ... +N more' in about ``limit`` characters; and how many it shows."""
    parts: list[str] = []
    used = 0
    for label, dtype in pairs:
        part = f"{_name(label)}: {dtype}"
        if parts and used + len(part) + 2 > limit:
            break
        parts.append(part)
        used += len(part) + 2
    shown = len(parts)
    if shown < count:
        parts.append(f"... +{count - shown} more")
    return ", ".join(parts), shown


def _columns_detail(pairs: Callable[[], Iterable[tuple[Any, Any]]], count: int) -> list[str]:
    """The columns the headline had to cut (up to COLUMNS_IN_DETAILS_CHARS more)."""
    _, shown = _listing(pairs(), count, COLUMNS_IN_HEADLINE_CHARS)
    if shown >= count:
        return []
    rest, _ = _listing(islice(pairs(), shown, None), count - shown, COLUMNS_IN_DETAILS_CHARS)
    return [f"more columns: {rest}"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        try:
            text = str(value)
        except Exception:
            text = "?"
    return clip(text.replace("\n", " "), 24)


def _table(names: list[str], columns: list[list[Any]], index: list[Any] | None, more: int) -> list[str]:
    """A few rows as aligned text, bounded in width: never a frame's own (unbounded) repr."""
    cells = [[_cell(v) for v in col] for col in columns]
    heads = list(names)
    if index is not None:
        heads.insert(0, "")
        cells.insert(0, [_cell(v) for v in index])
    if more:
        heads.append(f"... +{more} columns")
        cells.append([""] * (len(cells[0]) if cells else 0))
    widths = [max([len(h), *(len(c) for c in col)]) for h, col in zip(heads, cells)]
    rows = [heads] + [list(row) for row in zip(*cells)]
    return [clip("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), LINE_CHARS) for row in rows]


def _nulls(pairs: Iterable[tuple[Any, int]]) -> str:
    found = [f"{_name(label)} {int(n):,}" for label, n in pairs if n]
    return "nulls: " + (clip(", ".join(found), LINE_CHARS) if found else "none")


# -- pandas ------------------------------------------------------------------


def _pd_frame_details(df: Any) -> list[str]:
    rows, cols = df.shape
    dtypes = list(df.dtypes)
    lines = _columns_detail(lambda: zip(df.columns, dtypes), cols)
    memory = _bytes(int(df.memory_usage(index=True, deep=False).sum()))  # deep=True is O(rows) on objects
    shallow = any(dt == object or getattr(dt, "storage", None) == "python" for dt in dtypes)
    lines.append(f"index: {_pd_index_kind(df.index)}; memory: {memory}{'+' if shallow else ''}")
    if cols and rows * cols <= NULL_COUNT_MAX_CELLS:
        lines.append(_nulls(zip(df.columns, df.isna().to_numpy().sum(axis=0))))
    if rows and cols:
        sub = df.head(SAMPLE_ROWS) if cols <= SAMPLE_COLUMNS else df.iloc[:SAMPLE_ROWS, :SAMPLE_COLUMNS]
        columns = sub.to_numpy(dtype=object).T.tolist()
        index = None if type(df.index).__name__ == "RangeIndex" else list(sub.index)
        lines.append(f"first {len(sub)} rows:")
        lines += ["  " + line for line in _table([_name(c) for c in sub.columns], columns, index, cols - sub.shape[1])]
    return lines


@_builtin("pandas.DataFrame", details=_pd_frame_details)
def _pd_frame(df: Any) -> str:
    rows, cols = df.shape
    listing, _ = _listing(zip(df.columns, df.dtypes), cols, COLUMNS_IN_HEADLINE_CHARS)
    return f"{type(df).__name__} {rows:,} x {cols} ({listing})"


def _pd_index_kind(index: Any) -> str:
    kind = type(index).__name__
    if kind == "RangeIndex":
        text = f"RangeIndex {index.start}..{index.stop - index.step}" if len(index) else "RangeIndex (empty)"
        if index.step != 1:
            text += f" step {index.step}"
    elif kind == "MultiIndex":
        text = f"MultiIndex of {index.nlevels} levels ({', '.join(str(n) for n in index.names)})"
    else:
        text = f"{kind} ({index.dtype})"
        if len(index):
            text += f" {_cell(index[0])} .. {_cell(index[-1])}"
    if kind != "MultiIndex" and index.name is not None:
        text += f" named {_name(index.name)}"
    return text


def _pd_series_details(s: Any) -> list[str]:
    lines = [f"index: {_pd_index_kind(s.index)}; memory: {_bytes(int(s.memory_usage(index=True, deep=False)))}"]
    if len(s) <= NULL_COUNT_MAX_CELLS:
        lines.append(f"nulls: {int(s.isna().sum()):,}")
    head = s.iloc[:SAMPLE_VALUES]
    if type(s.index).__name__ == "RangeIndex":
        values = [_cell(v) for v in head.tolist()]
    else:
        values = [f"{_cell(k)}: {_cell(v)}" for k, v in zip(head.index, head.tolist())]
    if values:
        label = "values" if len(s) <= SAMPLE_VALUES else f"first {len(values)} values"
        lines.append(clip(f"{label}: " + ", ".join(values), LINE_CHARS))
    return lines


@_builtin("pandas.Series", details=_pd_series_details)
def _pd_series(s: Any) -> str:
    name = f" {s.name!r}" if s.name is not None else ""
    return f"{type(s).__name__}{name} of {len(s):,} ({s.dtype})"


@_builtin("pandas.Index")
def _pd_index(index: Any) -> str:
    values = ", ".join(_cell(v) for v in index[:SAMPLE_VALUES].tolist())
    more = ", ..." if len(index) > SAMPLE_VALUES else ""
    name = f" named {_name(index.name)}" if getattr(index, "name", None) is not None else ""
    return f"{type(index).__name__} of {len(index):,} ({index.dtype}){name}: [{values}{more}]"


# -- numpy -------------------------------------------------------------------


def _np_array_details(a: Any) -> list[str]:
    if a.size <= SAMPLE_VALUES:
        return []
    values = ", ".join(_cell(v) for v in a.flat[:SAMPLE_VALUES].tolist())  # flat[:5]: no copy of the array
    return [clip(f"first values: {values}, ...", LINE_CHARS)]


@_builtin("numpy.ndarray", details=_np_array_details)
def _np_array(a: Any) -> str:
    text = f"{type(a).__name__} shape={a.shape} dtype={a.dtype} ({_bytes(a.nbytes)})"
    if a.size <= SAMPLE_VALUES:
        text += f" = {clip(str(a.tolist()), 80)}"
    return text


@_builtin("numpy.generic")
def _np_scalar(x: Any) -> str:
    return f"{type(x).__name__} = {clip(str(x), 80)}"


# -- polars ------------------------------------------------------------------


def _pl_frame_details(df: Any) -> list[str]:
    lines = _columns_detail(lambda: df.schema.items(), df.width)
    lines.append(f"memory: ~{_bytes(df.estimated_size())}")
    if df.width:
        lines.append(_nulls(zip(df.columns, df.null_count().row(0))))  # null counts are metadata in polars: cheap
    if df.height and df.width:
        sub = df.head(SAMPLE_ROWS).select(df.columns[:SAMPLE_COLUMNS])
        lines.append(f"first {sub.height} rows:")
        columns = [sub.get_column(c).to_list() for c in sub.columns]
        lines += ["  " + line for line in _table([_name(c) for c in sub.columns], columns, None, df.width - sub.width)]
    return lines


@_builtin("polars.DataFrame", details=_pl_frame_details)
def _pl_frame(df: Any) -> str:
    listing, _ = _listing(df.schema.items(), df.width, COLUMNS_IN_HEADLINE_CHARS)
    return f"polars DataFrame {df.height:,} x {df.width} ({listing})"


def _pl_lazy_details(lf: Any) -> list[str]:
    schema = lf.collect_schema()
    return _columns_detail(lambda: schema.items(), len(schema))


@_builtin("polars.LazyFrame", details=_pl_lazy_details)
def _pl_lazy(lf: Any) -> str:
    # collect_schema() resolves the plan's schema; it never collects the data.
    try:
        schema = lf.collect_schema()
    except Exception as exc:
        return f"polars LazyFrame, lazy (not computed; its schema does not resolve: {type(exc).__name__})"
    listing, _ = _listing(schema.items(), len(schema), COLUMNS_IN_HEADLINE_CHARS)
    return f"polars LazyFrame, lazy (rows not computed), {_n(len(schema), 'column')} ({listing})"


def _pl_series_details(s: Any) -> list[str]:
    values = ", ".join(_cell(v) for v in s.head(SAMPLE_VALUES).to_list())
    return [f"nulls: {s.null_count():,}", clip(f"first values: {values}", LINE_CHARS)] if len(s) else []


@_builtin("polars.Series", details=_pl_series_details)
def _pl_series(s: Any) -> str:
    return f"polars Series {s.name!r} of {len(s):,} ({s.dtype})"


# -- pyarrow -----------------------------------------------------------------


def _pa_table_details(t: Any) -> list[str]:
    schema = t.schema
    lines = _columns_detail(lambda: zip(schema.names, schema.types), t.num_columns)
    lines.append(f"memory: {_bytes(t.get_total_buffer_size())}")
    if t.num_columns:
        lines.append(_nulls((name, t.column(i).null_count) for i, name in enumerate(schema.names)))
    if t.num_rows and t.num_columns:
        shown = list(range(min(SAMPLE_COLUMNS, t.num_columns)))
        sub = t.slice(0, SAMPLE_ROWS)
        columns = [sub.column(i).to_pylist() for i in shown]
        lines.append(f"first {sub.num_rows} rows:")
        names = [_name(schema.names[i]) for i in shown]
        lines += ["  " + line for line in _table(names, columns, None, t.num_columns - len(shown))]
    return lines


@_builtin("pyarrow.Table", "pyarrow.RecordBatch", details=_pa_table_details)
def _pa_table(t: Any) -> str:
    listing, _ = _listing(zip(t.schema.names, t.schema.types), t.num_columns, COLUMNS_IN_HEADLINE_CHARS)
    return f"pyarrow {type(t).__name__} {t.num_rows:,} x {t.num_columns} ({listing})"


def _pa_array_details(a: Any) -> list[str]:
    values = ", ".join(_cell(v) for v in a.slice(0, SAMPLE_VALUES).to_pylist())
    return [f"nulls: {a.null_count:,}", clip(f"first values: {values}", LINE_CHARS)] if len(a) else []


@_builtin("pyarrow.Array", "pyarrow.ChunkedArray", details=_pa_array_details)
def _pa_array(a: Any) -> str:
    chunks = f", {a.num_chunks} chunks" if hasattr(a, "num_chunks") else ""
    return f"pyarrow {type(a).__name__} of {len(a):,} ({a.type}){chunks}"


@_builtin("pyarrow.Dataset")
def _pa_dataset(ds: Any) -> str:
    # A dataset is files on disk: its schema is known, counting rows would read them.
    schema = ds.schema
    listing, _ = _listing(zip(schema.names, schema.types), len(schema.names), COLUMNS_IN_HEADLINE_CHARS)
    return f"pyarrow {type(ds).__name__}, lazy (rows not counted), {_n(len(schema.names), 'column')} ({listing})"


# -- Dask: everything comes from the collection's metadata, nothing is computed ---


def _dask_frame_details(ddf: Any) -> list[str]:
    dtypes = ddf.dtypes
    return _columns_detail(lambda: dtypes.items(), len(dtypes))


@_builtin("dask.DataFrame", "dask_expr.DataFrame", details=_dask_frame_details)
def _dask_frame(ddf: Any) -> str:
    dtypes = ddf.dtypes  # from the collection's _meta: an empty pandas frame
    listing, _ = _listing(dtypes.items(), len(dtypes), COLUMNS_IN_HEADLINE_CHARS)
    return (f"dask DataFrame, lazy (rows not computed), {_n(ddf.npartitions, 'partition')}, "
            f"{_n(len(dtypes), 'column')} ({listing})")


@_builtin("dask.Series", "dask_expr.Series")
def _dask_series(s: Any) -> str:
    name = f" {s.name!r}" if s.name is not None else ""
    return f"dask Series{name} ({s.dtype}), lazy (rows not computed), {_n(s.npartitions, 'partition')}"


@_builtin("dask.Array")
def _dask_array(a: Any) -> str:
    return f"dask Array shape={a.shape} dtype={a.dtype} chunks={a.chunksize}, lazy (not computed)"


# -- PySpark: the schema comes from the analysed plan; rows are never counted ---


def _spark_details(df: Any) -> list[str]:
    dtypes = df.dtypes
    return _columns_detail(lambda: dtypes, len(dtypes))


@_builtin("pyspark.DataFrame", details=_spark_details)
def _spark_frame(df: Any) -> str:
    dtypes = df.dtypes  # [(name, type)] from the schema
    listing, _ = _listing(dtypes, len(dtypes), COLUMNS_IN_HEADLINE_CHARS)
    return f"Spark DataFrame, lazy (rows not counted), {_n(len(dtypes), 'column')} ({listing})"


# -- the prompt section ------------------------------------------------------

HEADER = "Variables in the notebook (live objects: use them directly):"


def rank(names: Iterable[str], task: str = "", known: Container[str] | None = None, skip: Container[str] = ()
         ) -> list[str]:
    """Names mentioned in the task first (in order of mention), then the most recently defined.

    "Recently defined" is the namespace's insertion order, newest first: a
    new name goes to the end of the dict; rebinding an existing name does not
    move it (and ``del`` then a new assignment does). ``known``: the names (and perhaps ``skip``, names
    not ranked), for a quick ``in``: a dict the caller has, not a set of 10,000 names made for a task's words.
    """
    names = list(names)
    words = dict.fromkeys(_IDENT.findall(task))
    known = known if known is not None else set(names) if words else ()
    mentioned = [w for w in words if w in known and w not in skip]
    if not mentioned:
        return names[::-1]
    return mentioned + list(filterfalse(set(mentioned).__contains__, reversed(names)))


def summarize(
    ns: Mapping[str, Any],
    hidden: Container[str] = (),
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    task: str = "",
    variables: Mapping[str, Any] | None = None,
) -> str:
    """The 'Variables in the notebook' section of a task prompt, within ``budget_tokens`` (chars / 4).

    ``variables``: ``user_variables(ns, hidden)`` when the caller has it already (a run's start).

    Two passes over the ranked variables: first one headline each, until one
    does not fit (it and the rest are named in an "and N more variables" line);
    then, in rank order, each gets its detail lines (all columns, index and
    memory, nulls, sample rows: most useful first) while the budget allows.
    """
    if variables is None:
        variables = user_variables(ns, hidden)
    if not variables:
        return ""
    budget = max(budget_tokens, 0) * CHARS_PER_TOKEN
    names = list(variables)
    # The modules, at C speed (no code per name): the kinds of the values, then the few kinds that are modules.
    kinds = list(map(type, variables.values()))
    module_kinds = {kind for kind in set(kinds) if issubclass(kind, types.ModuleType)}
    is_module = list(map(module_kinds.__contains__, kinds)) if module_kinds else ()
    modules = [(n, variables[n]) for n in compress(names, is_module)]
    ranked = rank(compress(names, map(operator.not_, is_module)) if modules else names, task, known=variables,
                  skip={name for name, _ in modules})
    module_line = _names_line("- imported modules: ", [_module_label(n, m) for n, m in modules],
                              min(300, budget // 5)) if modules else ""
    reserve = min(300, budget // 6) if ranked else 0  # room kept for the "and N more variables" line
    room = budget - len(HEADER) - (len(module_line) + 1 if module_line else 0) - reserve

    entries: list[list[Any]] = []  # [text, detail function]
    known = redact.current()
    for name in ranked:
        head, details = _summary_parts(name, variables[name], known)
        line = f"- {name}: {head}"
        if len(line) + 1 > room:
            break
        entries.append([line, details])
        room -= len(line) + 1
    cut = ranked[len(entries):]

    misses = 0
    for entry in entries:
        if room < 40 or misses >= 3:
            break
        fitted = True
        for block in _blocks(entry[1]()):
            extra = "".join(f"\n    {line}" for line in block)
            if len(extra) > room:
                fitted = False
                continue
            entry[0] += extra
            room -= len(extra)
        misses += not fitted

    lines = [HEADER] + [text for text, _ in entries]
    if cut:
        lines.append(_names_line(f"- and {_n(len(cut), 'more variable')}: ", cut, room + reserve - 1))
    if module_line:
        lines.append(module_line)
    return "\n".join(lines)


def _blocks(lines: list[str]) -> list[list[str]]:
    """Detail lines grouped so that an indented run (sample rows) goes with the line that introduces it."""
    blocks: list[list[str]] = []
    for line in lines:
        if blocks and line.startswith(" "):
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def _module_label(name: str, module: types.ModuleType) -> str:
    real = getattr(module, "__name__", name)
    return name if real == name else f"{name} ({real})"


def _names_line(prefix: str, names: list[str], limit: int) -> str:
    """``prefix`` and as many names as fit in ``limit`` characters, then '...'."""
    shown: list[str] = []
    used = len(prefix) + 5  # room for ", ..."
    for name in names:
        if used + len(name) + 2 > limit:
            break
        shown.append(name)
        used += len(name) + 2
    if not shown:
        return prefix.rstrip(": ")
    return prefix + ", ".join(shown) + (", ..." if len(shown) < len(names) else "")


# -- {name} in the task ------------------------------------------------------

_BRACES = re.compile(r"\{\{([^{}\n]*)\}\}|\{\{|\{([^\W\d]\w*)\}")


def interpolate(task: str, ns: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Put each ``{name}``'s headline in the task; returns (task, names that are not variables).

    ``{{`` escapes a brace: ``{{name}}`` gives a literal ``{name}`` (a ``}}``
    closing a ``{{`` becomes ``}``), a lone ``{{`` gives ``{``; an unknown
    ``{name}`` is left as written. Only ``{identifier}`` is interpolated, so
    ``{'a': {'b': 1}}`` in a task stays as it is.
    """
    unknown: list[str] = []

    def replace(match: re.Match) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped is not None:
            return "{" + escaped + "}"
        if name is None:
            return "{"
        if name not in ns:
            if name not in unknown:
                unknown.append(name)
            return match.group(0)
        return f"`{name}` ({named_headline(name, ns[name])})"

    return _BRACES.sub(replace, task), unknown


# -- what a step changed -----------------------------------------------------

Snapshot = dict[str, Any]


def snapshot(ns: Mapping[str, Any], hidden: Container[str] = ()) -> Snapshot:
    """The user's variables and the objects they hold.

    References, not ``id()``s: an id can be reused by a new object once the old
    one is freed, which would hide a rebinding. The snapshot lives for one step.
    """
    return user_variables(ns, hidden)


def diff(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    return {
        "created": [n for n in after if n not in before],
        "rebound": [n for n in after if n in before and after[n] is not before[n]],
        "deleted": [n for n in before if n not in after],
    }


class Bindings:
    """What a namespace's names are bound to now, to tell after an action what it created, rebound, deleted.

    The per-step twin of ``snapshot`` + ``diff``, proportional to what the action touched rather than
    to the notebook's size in Python work: a shallow copy of the namespace (C speed; it holds
    references, so an ``id`` cannot be reused meanwhile), then one identity comparison of every
    binding done by ``map``/``compress`` in C. Every way of binding counts, the action's own
    statements as well as a function's ``global``, ``globals()[...]`` or ``del``; only the few names
    that changed are then judged as the user's variables or not (``user_variables``' rules, with
    ``hidden`` as it is after the action).
    """

    def __init__(self, ns: dict[str, Any], hidden: Container[str] = (), names: Iterable[str] | None = None):
        """``names``: the only names the action can bind, when the caller knows it (an action that runs no
        other code: ``core.execution.static_bindings``); then only they are copied and compared."""
        self.ns, self.hidden = ns, hidden
        self.names = None if names is None else list(dict.fromkeys(names))
        if self.names is None:
            self.before: dict[str, Any] = ns.copy()
        else:
            self.before = {name: ns[name] for name in self.names if name in ns}

    def __getitem__(self, name: str) -> Any:
        """What ``name`` held before."""
        return self.before[name]

    def changes(self) -> dict[str, list[str]]:
        """The user's variables created, rebound (another object) and deleted since the copy, as ``diff`` gives."""
        ns, before = self.ns, self.before
        if self.names is not None:
            return self._judge([n for n in self.names if ns.get(n, _MISSING) is not before.get(n, _MISSING)
                                and n in ns], [n for n in self.names if n in before and n not in ns])
        count = len(before)
        gone: list[str] = []
        if len(ns) >= count and not any(map(is_not, ns, before)):
            # The usual case: no name left, new ones were appended (IPython's _iN too): the first names are
            # the copy's (the same str objects, in order). The values line up with the copy's: compare
            # them by identity, pairwise, in C.
            moved = list(compress(ns, map(is_not, ns.values(), before.values()))) + list(islice(ns, count, None))
        else:  # names deleted (or deleted and bound again): look each one up
            names = list(ns)
            moved = list(compress(names, map(is_not, ns.values(), map(before.get, names, repeat(_MISSING)))))
            if count - len(names) + sum(1 for n in moved if n not in before) > 0:  # some name left the namespace
                gone = list(filterfalse(ns.__contains__, before))
        return self._judge(moved, gone)

    def _judge(self, moved: list[str], gone: list[str]) -> dict[str, list[str]]:
        """``moved``: names bound now to another object or new; ``gone``: names no longer bound."""
        ns, before = self.ns, self.before
        maps, hidden = _maps(self.hidden), self.hidden
        created, rebound, deleted = [], [], []
        for name in moved:
            now = _visible(name, ns[name], maps, hidden)
            was = name in before and _visible(name, before[name], maps, hidden)
            if now and was:
                rebound.append(name)
            elif now:
                created.append(name)
            elif was:
                deleted.append(name)
        deleted += [name for name in gone if _visible(name, before[name], maps, hidden)]
        return {"created": created, "rebound": rebound, "deleted": deleted}


def format_diff(changes: Mapping[str, list[str]], ns: Mapping[str, Any], max_lines: int = DIFF_MAX_LINES) -> str:
    """One line per created, rebound or deleted variable, with its headline."""
    names = [(kind, name) for kind in ("created", "rebound", "changed", "deleted") for name in changes.get(kind, [])]
    lines = []
    for kind, name in names[:max_lines]:
        if kind != "deleted" and name in ns:
            lines.append(f"{kind} {name}: {named_headline(name, ns[name])}")
        else:
            lines.append(f"{kind} {name}")
    if len(names) > max_lines:
        lines.append(f"... and {len(names) - max_lines} more changes")
    return "\n".join(lines)
