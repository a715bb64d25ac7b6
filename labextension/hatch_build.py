"""Build function for hatch-jupyter-builder: ``npm ci`` + ``npm run build:prod`` in labextension/.

pyproject.toml points ``[tool.hatch.build.hooks.jupyter-builder] build-function`` here
(hatch-jupyter-builder imports it with the project root on ``sys.path``). Both
``pip install .`` and ``pip install -e .`` call it.

- Nothing to do when the built extension (``smol_magic/labextension``) is newer than
  every input (``src/``, ``style/``, ``package.json``, ``package-lock.json``,
  ``tsconfig.json``, ``install.json``): editable re-installs stay fast.
- ``npm ci`` (exactly the committed lock file) runs only when ``node_modules`` is missing
  or older than the lock file.
- No npm but an up-to-date-or-not build present: warn and ship what is there; no npm and
  no build: fail with a message that says what to install.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "smol_magic" / "labextension"
INPUTS = ("src", "style", "package.json", "package-lock.json", "tsconfig.json", "install.json")

log = logging.getLogger("smol_magic.labextension.build")


def _files(path: Path):
    if path.is_file():
        yield path
    elif path.is_dir():
        for root, _, names in os.walk(path):
            for name in names:
                yield Path(root) / name


def newest_mtime(*paths: Path) -> float:
    return max((f.stat().st_mtime for p in paths for f in _files(p)), default=0.0)


def is_built() -> bool:
    return all((OUTPUT / name).is_file() for name in ("package.json", "install.json", "static/style.js"))


def is_stale() -> bool:
    """True when the built extension is missing or older than one of its inputs."""
    if not is_built():
        return True
    return newest_mtime(*(HERE / name for name in INPUTS)) > newest_mtime(OUTPUT)


def _run(cmd: list[str]) -> None:
    log.info("> %s  (in %s)", " ".join(cmd), HERE)
    print(f"smol-magic labextension: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=HERE, check=True)


def build_labextension(target_name: str, version: str, force: bool | str = False, **_: object) -> None:
    """The hatch-jupyter-builder build function (``target_name``: wheel or sdist)."""
    force = str(force).lower() in ("1", "true", "yes")
    if not force and not is_stale():
        print("smol-magic labextension: the built extension is up to date, not rebuilding", flush=True)
        return
    npm = shutil.which("npm")
    if npm is None:
        if is_built():
            print("smol-magic labextension: npm not found; shipping the existing (possibly stale) build", flush=True)
            return
        raise RuntimeError(
            "Building smol-magic needs Node.js >= 20 and npm to build its JupyterLab extension "
            "(labextension/). Install them (e.g. apt-get install nodejs npm) and retry, or set "
            "SKIP_JUPYTER_BUILDER=1 to install without the extension."
        )
    lock, installed = HERE / "package-lock.json", HERE / "node_modules" / ".package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run([npm, "ci", "--no-audit", "--no-fund"])
    _run([npm, "run", "build:prod"])
    if not is_built():
        raise RuntimeError(f"npm run build:prod finished but {OUTPUT} lacks package.json, install.json or static/style.js")
