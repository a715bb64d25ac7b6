"""A static policy over the AST of each action: allow, ask or deny, with reasons.

This is a policy, not a sandbox: it stops what a careless or confused model
might do in the user's kernel. It cannot stop a determined attacker; run
untrusted inputs in an isolated kernel (a container or VM) instead.

The policy is data:

- ``Policy.authorized_imports``: modules the agent may import (``pkg``,
  ``pkg.*`` and ``*`` patterns). Some modules are never importable.
- ``Policy.allow``: capabilities a user grants (``CAPABILITIES``); each turns
  one kind of ``ask`` into ``allow``. ``deny`` cannot be granted away; only
  ``Policy(enabled=False)`` turns the guard off.
- ``GuardContext``: the live namespace the action will run in, which names
  agent runs created (free to rebind) and which the user protected.

``check(code, policy, context)`` returns a ``GuardVerdict`` (a ``Verdict`` with
structured ``findings``); every reason says what was found, on which line, what
would allow it (for ``ask``) and what to do instead.

The parts: ``rules`` (the tables), ``policy`` (what the guard takes and gives),
``checker`` (``check()`` and the walk), ``binder`` (what names are bound to),
``refs`` (what names denote), ``fold`` (static values), ``names``,
``statements``, ``calls``, ``files`` and ``data`` (the rules, by concern).
Output sanitising and secret redaction live in ``smol_magic.safety``; they are
re-exported here for older imports.
"""

from ..safety.redact import redact_secrets
from ..safety.sanitize import sanitize_bundle, sanitize_html, sanitize_outputs
from .checker import check
from .data import SHORT_STRING, UNDO_MAX_BYTES, undoable, users_data
from .policy import Finding, GuardContext, GuardVerdict, Policy
from .rules import (
    ALLOWED_UNDER_FORBIDDEN, AMBIGUOUS_MODULE_ATTRS, ARG_MUTATORS, CAPABILITIES, DANGEROUS_FUNCTION_MODULES,
    DB_WRITERS, DEFAULT_AUTHORIZED_IMPORTS, FILE_MODULES, FORBIDDEN_ATTRS, FORBIDDEN_BUILTINS, FORBIDDEN_MODULES,
    FORBIDDEN_SUBMODULES, IPYTHON_NAMES, MODE_IO, NETWORK_CALLS, NETWORK_MODULES, PATH_METHODS, PROCESS_CALLS,
    READERS, SAFE_DUNDER_NAMES, SAFE_DUNDERS, SQL_READERS, SQL_STRINGS, SUPER_DUNDERS, UNPICKLE_MODULES, UNPICKLERS,
    URL_SCHEMES, WEAK_IO, WRITERS, module_forbidden,
)

__all__ = [
    # the public API
    "CAPABILITIES", "DEFAULT_AUTHORIZED_IMPORTS", "Finding", "GuardContext", "GuardVerdict", "Policy",
    "check", "redact_secrets", "sanitize_html", "sanitize_outputs", "undoable", "users_data",
    # re-exported for older imports (``guard.X``)
    "ALLOWED_UNDER_FORBIDDEN", "AMBIGUOUS_MODULE_ATTRS", "ARG_MUTATORS", "DANGEROUS_FUNCTION_MODULES", "DB_WRITERS",
    "FILE_MODULES", "FORBIDDEN_ATTRS", "FORBIDDEN_BUILTINS", "FORBIDDEN_MODULES", "FORBIDDEN_SUBMODULES",
    "IPYTHON_NAMES", "MODE_IO", "NETWORK_CALLS", "NETWORK_MODULES", "PATH_METHODS", "PROCESS_CALLS", "READERS",
    "SAFE_DUNDER_NAMES", "SAFE_DUNDERS", "SHORT_STRING", "SQL_READERS", "SQL_STRINGS", "SUPER_DUNDERS",
    "UNDO_MAX_BYTES", "UNPICKLE_MODULES", "UNPICKLERS", "URL_SCHEMES", "WEAK_IO", "WRITERS", "module_forbidden",
    "sanitize_bundle",
]
