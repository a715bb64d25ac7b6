"""``python -m smol_magic demo``: run the quickstart notebook offline, in a real kernel;
``python -m smol_magic mcp --connection-file KERNEL.json``: a kernel's MCP server over stdio."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def examples_dir() -> Path:
    """Examples ship inside the wheel (smol_magic/examples) and at the top of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parent / "examples"):
        if (candidate / "quickstart.ipynb").exists():
            return candidate
    raise SystemExit("smol-magic: the example notebooks are missing from this installation")


DEMO_NEEDS = ("pandas", "matplotlib")  # what the quickstart notebook itself imports


def demo(output: Path, timeout: int) -> int:
    missing = [name for name in DEMO_NEEDS if not _installed(name)]
    if missing:
        print(f"smol-magic demo: the quickstart needs {' and '.join(missing)}: "
              "pip install 'smol-magic[demo]' (or pip install -e '.[demo]' in a checkout)", file=sys.stderr)
        return 2
    import nbclient
    import nbformat
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    source = examples_dir() / "quickstart.ipynb"
    nb = nbformat.read(source, as_version=4)
    print(f"smol-magic demo: running {source.name} in a fresh kernel (scripted model, no network)...")
    # IPC: the kernel talks over local sockets, so it has nothing to say about unencrypted TCP.
    sockets = tempfile.TemporaryDirectory(prefix="smol_magic_demo_")
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets.name) / "kernel"))
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}, km=km
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        print(f"smol-magic demo: a cell failed:\n{exc}", file=sys.stderr)
        return 1
    finally:
        nbformat.write(nb, output)
        if km.has_kernel:  # nbclient leaves a kernel manager it was given running
            asyncio.run(km.shutdown_kernel())
        sockets.cleanup()
    answer = _stream_text(nb, "fastest growing region:")
    steps = _stream_text(nb, "■ ")
    print(steps or "", answer or "", sep="\n")
    print(f"executed notebook written to {output.resolve()}")
    return 0


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # in sys.modules as None: blocked
        return False


def _stream_text(nb, marker: str) -> str | None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")  # a trace is a display
            for line in str(text).splitlines():
                if line.startswith(marker):
                    return line
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smol_magic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="execute examples/quickstart.ipynb with its scripted model")
    run.add_argument("-o", "--output", type=Path, default=Path("smol_magic_demo.ipynb"))
    run.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    bridge = sub.add_parser("mcp", help="a running kernel's MCP server (%%agent serve) over stdio, for MCP clients "
                            "that start stdio servers")
    bridge.add_argument("--connection-file", required=True, metavar="KERNEL.json",
                        help="the kernel's connection file (%%connect_info in the notebook shows it)")
    args = parser.parse_args(argv)
    if args.command == "mcp":
        from .jupyter.mcp_bridge import serve_stdio

        return serve_stdio(args.connection_file)
    return demo(args.output, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
