"""What the guard takes and gives: ``Policy``, ``GuardContext``, ``Finding``, ``GuardVerdict``."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Container, Iterable, Mapping

from ..core.memory import Verdict
from ..safety.redact import redact_all
from .rules import CAPABILITIES, DEFAULT_AUTHORIZED_IMPORTS, module_forbidden


# -- the policy ----------------------------------------------------------------------------------


# The modules a released module's functions come from (os.getpid is posix.getpid).
_BEHIND = {"os": ("posix", "nt", "posixpath", "ntpath", "genericpath"), "subprocess": ("_posixsubprocess",)}


@dataclass
class Policy:
    """What agent code may do: authorized imports, granted capabilities, where the notebook lives."""

    authorized_imports: list[str] = field(default_factory=lambda: list(DEFAULT_AUTHORIZED_IMPORTS))
    allow: frozenset[str] | set[str] | list[str] = frozenset()  # capabilities granted (CAPABILITIES)
    enabled: bool = True  # False: the guard is off (an explicit choice, for one cell)
    workdir: str | os.PathLike | None = None  # the notebook's folder; None: the current directory
    # Forbidden modules this policy lets code import anyway: only for code run in a separate, contained
    # process (--executor isolated, AgentMagics.isolated_policy), never for the notebook's own kernel.
    released: frozenset[str] | set[str] = frozenset()

    def __post_init__(self) -> None:
        self.allow = frozenset(self.allow)
        self.released = frozenset(self.released)
        unknown = sorted(self.allow - CAPABILITIES.keys())
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}")

    def granted(self, capability: str) -> bool:
        return capability in self.allow

    def with_grants(self, *capabilities: str, imports: Iterable[str] = ()) -> "Policy":
        """A copy with more capabilities and imports (a cell's ``--allow`` and ``--imports``)."""
        extra = [m for m in imports if m not in self.authorized_imports]
        return replace(self, allow=frozenset(self.allow) | set(capabilities),
                       authorized_imports=list(self.authorized_imports) + extra)

    def root(self) -> str:
        return os.path.realpath(os.fspath(self.workdir) if self.workdir is not None else os.getcwd())

    def releases(self, module: str) -> bool:
        """``module`` (or the C module behind it: posix for os) is one this policy lets code use."""
        if not self.released:
            return False  # the usual policy: nothing released
        names = set(self.released) | {inner for m in self.released for inner in _BEHIND.get(m, ())}
        return any(module == m or module.startswith(m + ".") for m in names)

    def module_forbidden(self, module: str) -> bool:
        return not self.releases(module) and module_forbidden(module)

    def import_allowed(self, module: str) -> bool:
        if self.module_forbidden(module):
            return False
        if self.released:
            behind = [inner for m in self.released for inner in _BEHIND.get(m, ())]
            if any(module == inner or module.startswith(inner + ".") for inner in behind):
                return True  # os.path is posixpath: released with os
        for pattern in self.authorized_imports:
            if pattern == "*" or module == pattern or module.startswith(pattern + "."):
                return True
            if pattern.endswith(".*") and (module == pattern[:-2] or module.startswith(pattern[:-1])):
                return True
            if ("*" in pattern or "?" in pattern or "[" in pattern) and fnmatch.fnmatchcase(module, pattern):
                return True
        return False


@dataclass
class GuardContext:
    """The live state an action is judged against.

    ``namespace``: the namespace the code will run in (``shell.user_ns``).
    ``agent_names``: names agent runs created; they are free to rebind and change.
    ``protected``: names protected explicitly (``--protect a,b``), whatever they hold.
    ``hidden``: names that are not the user's data (IPython internals, the agent's tools);
    rebinding one of them is denied.
    ``can_undo``: ``value -> (bool, why)``: whether undo can restore an in-place change of
    ``value``; defaults to ``undoable``. Pass the undo system's own predicate.
    """

    namespace: Mapping[str, Any] = field(default_factory=dict)
    agent_names: Container[str] = frozenset()
    protected: Container[str] = frozenset()
    hidden: Container[str] = frozenset()
    can_undo: Callable[[Any], tuple[bool, str]] | None = None


@dataclass
class Finding:
    """One thing the guard found: a decision, what it is, and what would allow it."""

    decision: str  # allow | ask | deny
    message: str  # what the code does
    line: int | None = None
    capability: str | None = None  # for ask: the capability that turns it into allow (None: only a person)
    instead: str = ""  # what to do instead
    irreversible: bool = False  # an in-place change that undo cannot restore
    granted: bool = False  # an ask turned into allow by a granted capability
    note: str = ""  # replaces the standard tail of a deny ("never allowed") when the user can change it

    @property
    def text(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        if self.decision == "deny" and self.note:
            tail = f" {self.note}"
        elif self.decision == "deny":
            tail = " It is never allowed, whoever approves."
        elif self.granted:
            tail = f" Allowed: '{self.capability}' is granted."
        elif self.decision == "ask" and self.capability is None:
            tail = " Needs a person's approval (no capability grants it)."
        elif self.decision == "ask":
            tail = f" Needs a person's approval (or grant '{self.capability}' to allow)."
        else:
            tail = ""
        instead = f" Instead: {self.instead}" if self.instead and not self.granted else ""
        return f"{where}{self.message.rstrip('.')}.{tail}{instead}"


class GuardVerdict(Verdict):
    """A ``Verdict`` plus structured findings (not serialised: ``to_dict`` keeps decision and reasons)."""

    findings: list[Finding]

    def __init__(self, decision: str, reasons: list[str], findings: Iterable[Finding] = ()):
        super().__init__(decision, reasons)
        self.findings = list(findings)

    @property
    def capabilities(self) -> list[str]:
        """The capabilities that would turn this ``ask`` into ``allow`` (empty for deny)."""
        if self.decision == "deny":
            return []
        return sorted({f.capability for f in self.findings if f.decision == "ask" and not f.granted and f.capability})

    @property
    def irreversible(self) -> bool:
        """True when the action changes an object in place and undo cannot restore it."""
        return any(f.irreversible for f in self.findings)


def _verdict(findings: list[Finding], policy: Policy) -> GuardVerdict:
    # a message may quote a value the guard read from the namespace (a path, a URL): no secrets in it
    for f, message in zip(findings, redact_all([f.message for f in findings])):
        f.message = message
    unique: dict[str, Finding] = {}
    for f in findings:
        if f.decision == "ask" and f.capability and policy.granted(f.capability):
            f.granted = True
        unique.setdefault(f.text, f)
    findings = list(unique.values())
    if len(findings) > 12:  # a long list helps no one; the first ones say what to fix
        order = {"deny": 0, "ask": 1, "allow": 2}
        findings.sort(key=lambda f: (order[f.decision], f.line if f.line is not None else 10**9))
        more = len(findings) - 12
        findings = findings[:12] + [Finding(findings[12].decision if findings[0].decision != "deny" else "deny",
                                            f"... and {more} more findings of the same kinds")]
    if any(f.decision == "deny" for f in findings):
        decision = "deny"
    elif any(f.decision == "ask" and not f.granted for f in findings):
        decision = "ask"
    else:
        decision = "allow"
    order = {"deny": 0, "ask": 1, "allow": 2}
    findings.sort(key=lambda f: (order[f.decision] + f.granted, f.line if f.line is not None else 10**9))
    return GuardVerdict(decision, [f.text for f in findings], findings)
