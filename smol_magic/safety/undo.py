"""Undo of a run: what each name held before the run, copies of what an action changes in place.

The guard and undo share one predicate, ``can_undo``: the guard is given it
(``GuardContext.can_undo``) to say whether an in-place change can be undone,
and the snapshots here are taken for exactly the values it accepts.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Container, Iterable, Mapping, MutableMapping

from .. import guard
from ..core.names import used_names
from . import watch

UNBOUND = object()  # in an undo log: the name did not exist before the run

CanUndo = Callable[[Any], tuple[bool, str]]


def can_undo(value: Any, max_bytes: int | None = None) -> tuple[bool, str]:
    """Whether undo can restore ``value`` after an in-place change (and why not); ``max_bytes``: the cap."""
    return guard.undoable(value, max_bytes)


def snapshots(code: str, ns: Mapping[str, Any], agent_made: Container[str],
              context: guard.GuardContext) -> dict[str, Any]:
    """Copies of the user's objects ``code`` may change in place, for those ``context.can_undo`` accepts."""
    accepts: CanUndo = context.can_undo or can_undo
    return {name: copy_value(ns[name]) for name in used_names(code)
            if name in ns and name not in agent_made and accepts(ns[name])[0]}


def record(log: dict[str, Any], ns: Mapping[str, Any], changes: dict[str, list[str]], previous: Mapping[str, Any],
           copies: Mapping[str, Any]) -> None:
    """Add an action's changes to a run's undo log (first value wins: the one before the run).

    A name the action changed in place (its copy differs now) is added to ``changes["changed"]``.
    """
    for name in changes.get("created", []):
        log.setdefault(name, UNBOUND)
    for name, value in previous.items():
        log.setdefault(name, value)
    for name, value in copies.items():  # names the action read but did not change need no undo
        if name in ns and name not in changes.get("rebound", []) and not same(ns[name], value):
            log.setdefault(name, value)
            changes.setdefault("changed", []).append(name)


def restore(log: Mapping[str, Any], ns: MutableMapping[str, Any],
            in_place: Iterable[Any] = ()) -> dict[str, list[str]]:
    """Put back every object in ``in_place`` (``watch.Watched`` snapshots of approved in-place
    changes, restored in the object itself so every alias sees it), then every binding in ``log``
    (remove what the run created, restore the rest). Says only what it did."""
    done: dict[str, list[str]] = {"removed": [], "restored": [], "not restored": []}
    for item in in_place:
        ok = watch.Watch().put_back(item)
        (done["restored"] if ok else done["not restored"]).append(
            item.path if ok else f"{item.path} (its copy could not be put back)")
    for name, value in log.items():
        if value is UNBOUND:
            if ns.pop(name, UNBOUND) is not UNBOUND:
                done["removed"].append(name)
        else:
            ns[name] = value
            if name not in done["restored"]:
                done["restored"].append(name)
    return done


def copy_value(value: Any) -> Any:
    """A faithful copy: pandas' and numpy's own deep copies, else ``copy.deepcopy``."""
    method = getattr(value, "copy", None)
    if callable(method) and type(value).__module__.split(".")[0] in ("pandas", "numpy"):
        return method(deep=True) if type(value).__module__.startswith("pandas") else method()
    return copy.deepcopy(value)


def same(a: Any, b: Any) -> bool:
    """Equal contents (for the undo log): pandas' equals, numpy's array_equal, else ==."""
    try:
        if hasattr(a, "equals") and type(a).__module__.startswith("pandas"):
            return bool(a.equals(b))
        if type(a).__module__.startswith("numpy"):
            import numpy

            return bool(numpy.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        return bool(a == b)
    except Exception:
        return False
