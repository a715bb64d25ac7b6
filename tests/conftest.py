"""Shared fixtures: an IPython shell with the extension loaded, fresh for each test."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def ip(monkeypatch):
    monkeypatch.delenv("SMOL_MAGIC_MODEL", raising=False)
    shell = InteractiveShell.instance()
    shell.reset(new_session=False)
    shell.config.pop("AgentMagics", None)  # %config in one test must not leak into the next
    shell.run_line_magic("load_ext", "smol_magic")
    magics = shell.magics_manager.registry["AgentMagics"]
    magics.current = None
    for name in magics.trait_names(config=True):  # every setting: ui="widgets" must not leak into the next test
        setattr(magics, name, magics.trait_defaults(name))
    magics._notices.clear()
    yield shell
    shell.config.pop("AgentMagics", None)
    shell.reset(new_session=False)
