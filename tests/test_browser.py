"""The live trace in a real JupyterLab, driven by a real Chromium (playwright-core).

Starts ``jupyter lab`` on 127.0.0.1 with a notebook that runs ``%%agent --approve every``
with a ``ScriptedModel``, then ``node tests/browser/trace.mjs`` opens it, runs all cells,
clicks the approval card's *Run* button for both steps and checks the static trace and
the cell after it. Screenshots go to ``tests/artifacts/``.

Needs Debian's Chromium at /usr/bin/chromium (or $SMOL_MAGIC_CHROMIUM) and Node >= 20;
``.ci/run`` installs them. A missing browser is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import nbformat
import pytest

HERE = Path(__file__).parent
BROWSER_DIR = HERE / "browser"
SCRIPT = BROWSER_DIR / "trace.mjs"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = os.environ.get("SMOL_MAGIC_CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = "trace.ipynb"

# What the scripted model says; the browser script looks for these strings.
STEP_1 = "answer_table = {'a': 1}\nprint('table built:', sorted(answer_table))"
STEP_2 = "final_answer('forty-two from the table')"
AFTER_CELL = "print('after', result)"
REPLIES = [
    f"Thought: I build the table first.\n```python\n{STEP_1}\n```",
    f"Thought: Now I answer.\n```python\n{STEP_2}\n```",
]
EXPECT = {
    "step1Code": STEP_1.splitlines()[0],
    "step1Output": "table built: ['a']",
    "step2Code": STEP_2,
    "finalAnswer": "forty-two from the table",
    "afterCell": AFTER_CELL,
    "after": "after forty-two from the table",
}


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext smol_magic"),
        nbformat.v4.new_code_cell(f"from smol_magic import ScriptedModel\n\nm = ScriptedModel({REPLIES!r})"),
        nbformat.v4.new_code_cell("%%agent -m m --approve every -o result\n"
                                  "Build a small table, then answer from it."),
        nbformat.v4.new_code_cell(AFTER_CELL),
    ]
    nbformat.write(nb, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode} before answering:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer {url}api/status within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM makes the server shut its kernels down and exit; SIGKILL if it hangs.

    (A kernel orphaned by a SIGKILL exits by itself: ipykernel watches its parent.)
    """
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


@contextlib.contextmanager
def jupyter_lab(tmp_path: Path, notebook: str = NOTEBOOK, write: Callable[[Path], None] = write_notebook):
    """A JupyterLab on a free loopback port serving a notebook dir with one notebook in it.

    By default the trace notebook; other browser tests pass their own name and ``write`` function.
    The context value has ``url``, ``notebook``, ``root`` (the served directory) and ``log``.
    """
    root = tmp_path / "notebooks"
    root.mkdir()
    write(root / notebook)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "news" toast over the screenshots; user settings and workspaces of this machine stay out.
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {
        **{k: v for k, v in os.environ.items() if k != "SMOL_MAGIC_MODEL"},
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--expose-app-in-browser",
           "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--notebook-dir={root}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_server(proc, url, log)
        yield {"url": url, "notebook": notebook, "root": root, "log": log}
    finally:
        stop_server(proc)


def browser_tools() -> str:
    """Node (returned), Chromium and playwright-core. A missing one fails the test: CI installs them."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium, as .ci/run does) "
                    "or point SMOL_MAGIC_CHROMIUM at a Chromium binary")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the browser test (Node >= 20)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        done = subprocess.run([npm, "ci", "--prefix", str(BROWSER_DIR), "--no-audit", "--no-fund", "--prefer-offline"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix tests/browser failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return node


def test_trace_approve_in_jupyterlab(tmp_path):
    """Run All, click Run on both approval cards, then the static trace and the next cell's output are there."""
    node = browser_tools()
    ARTIFACTS.mkdir(exist_ok=True)
    with jupyter_lab(tmp_path) as lab:
        env = {**os.environ, "CHROMIUM": CHROMIUM, "LAB_URL": lab["url"], "NOTEBOOK": lab["notebook"],
               "ARTIFACTS": str(ARTIFACTS), "EXPECT": json.dumps(EXPECT)}
        script = subprocess.Popen([node, str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            stdout, stderr = script.communicate(timeout=120)  # the script gives up by itself after 90 s
        except subprocess.TimeoutExpired:
            script.terminate()  # SIGTERM: playwright closes Chromium on its way out
            stdout, stderr = script.communicate(timeout=15)
        report = f"--- node stdout\n{stdout}\n--- node stderr\n{stderr}"
        if script.returncode != 0:
            pytest.fail(f"browser test failed (screenshots in {ARTIFACTS}):\n{report}\n"
                        f"--- jupyter lab log (tail)\n{lab['log'].read_text()[-3000:]}")
    print(report)
