"""Shared fixtures: an IPython shell with the extension loaded, fresh for each test."""

from __future__ import annotations

import os
import tempfile

import pytest
from IPython.core.interactiveshell import InteractiveShell

# The run store: never in the repository (kernels and nbval start in its folders), never shared by
# accident. This covers processes started outside a test function (nbval's kernels); each test
# gets a store of its own below, which the kernels and subprocesses it starts inherit.
os.environ["SMOL_MAGIC_STORE"] = os.path.join(tempfile.mkdtemp(prefix="smol-magic-store-"), "runs.sqlite")


@pytest.fixture(autouse=True)
def own_store(tmp_path_factory, monkeypatch):
    """Each test's runs go to a store of its own (tests of the store itself name theirs)."""
    path = tmp_path_factory.mktemp("store") / "runs.sqlite"
    monkeypatch.setenv("SMOL_MAGIC_STORE", str(path))
    return path


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


@pytest.fixture
def srv():
    """The local OpenAI-compatible test server (tests/openai_server.py), fresh for each test."""
    from openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server
