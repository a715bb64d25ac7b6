"""What the browser tests share: Chromium, node and playwright-core, a JupyterLab to serve a notebook, and
running one of the browser scripts against it.

Used by tests/test_browser.py (tests/browser/trace.mjs), tests/test_cells_browser.py (tests/browser/cells.mjs),
tests/test_runall_browser.py (tests/browser/runall.mjs)
and tests/test_labextension.py (labextension/ui-tests/insert-cells.mjs). The scripts share
tests/browser/lib.mjs, which imports playwright-core from tests/browser/node_modules.

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

import pytest
from kernel_helpers import kernel_env

HERE = Path(__file__).parent
BROWSER_DIR = HERE / "browser"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = os.environ.get("SMOL_MAGIC_CHROMIUM", "/usr/bin/chromium")


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
def jupyter_lab(tmp_path: Path, notebook: str, write: Callable[[Path], None], server: str = "jupyterlab",
                extra_settings: dict[str, dict] | None = None):
    """A JupyterLab (``server="notebook"``: a Notebook 7) on a free loopback port, serving a directory
    with one notebook in it, which ``write(path)`` writes. ``extra_settings`` are user settings by plugin,
    e.g. ``{"@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Dark"}}``.

    The context value has ``url``, ``notebook``, ``root`` (the served directory) and ``log``.
    """
    root = tmp_path / "notebooks"
    root.mkdir()
    write(root / notebook)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "news" toast over the screenshots; user settings and workspaces of this machine stay out.
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    for plugin, values in (extra_settings or {}).items():
        path = tmp_path / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **kernel_env(),  # no SMOL_MAGIC_MODEL: the notebooks choose their own models
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter-lab.log"
    cmd = [sys.executable, "-m", server, "--allow-root", "--no-browser", "--expose-app-in-browser",
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


def run_script(node: str, script: Path, lab: dict, timeout: float, artifacts: Path = ARTIFACTS,
               report: Path | None = None, **env: str) -> str:
    """Run a browser script on the served notebook; returns its stdout and stderr, fails the test if it fails.

    The script gets CHROMIUM, LAB_URL, NOTEBOOK, ARTIFACTS, REPORT (if ``report``) and ``env``; it gives up by
    itself before ``timeout`` seconds, after which it gets a SIGTERM (playwright closes Chromium on its way out).
    """
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHROMIUM": CHROMIUM, "LAB_URL": lab["url"], "NOTEBOOK": lab["notebook"],
           "ARTIFACTS": str(artifacts), **({"REPORT": str(report)} if report else {}), **env}
    proc = subprocess.Popen([node, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=15)
    out = f"--- node stdout\n{stdout}\n--- node stderr\n{stderr}"
    if proc.returncode != 0:
        seen = ""
        if report is not None:
            seen = f"--- report (tail)\n{report.read_text()[-6000:] if report.exists() else '(no report)'}\n"
        pytest.fail(f"browser script {script.name} failed (screenshots in {artifacts}):\n{out}\n{seen}"
                    f"--- jupyter lab log (tail)\n{lab['log'].read_text()[-3000:]}")
    return out
