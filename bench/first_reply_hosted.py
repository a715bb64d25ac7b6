"""The first %%agent request for a model that needs litellm, with litellm imported in a thread at %load_ext.

``SMOL_MAGIC_MODEL=openai/gpt-4o-mini`` is a model litellm knows, so its requests go through litellm
(core/direct.py takes only unknown models at a local server), and ``%load_ext`` starts importing
litellm in a thread (jupyter/magic.py ``preload_litellm``). The request goes to the local test server
(``OPENAI_API_BASE``), so nothing leaves the machine. Printed: for a person who runs the %%agent cell
0, 3 or 8 s after ``%load_ext``, the time from running it to the server receiving the request, next
to a plain ``import litellm`` in a fresh process (what the cell waited for before). Run it as
``python bench/first_reply_hosted.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from openai_server import OpenAIServer  # noqa: E402

DELAYS = (0.0, 3.0, 8.0)
CELL = textwrap.dedent("""
    import sys, time
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "smol_magic")
    time.sleep(float(sys.argv[1]))  # the person reads, loads data, types the task
    print("T0", time.monotonic())
    ip.run_cell("%%agent -o answer --approve never\\nSay hi.")
""")


def main() -> None:
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL="openai/gpt-4o-mini")
    plain = subprocess.run([sys.executable, "-X", "importtime", "-c", "import litellm"], capture_output=True,
                           text=True, env=env)
    total_us = max(int(line.split("|")[1]) for line in plain.stderr.splitlines() if line.startswith("import time:")
                   and line.split("|")[1].strip().isdigit())
    print("first request of a %%agent cell, SMOL_MAGIC_MODEL=openai/gpt-4o-mini (litellm needed), fresh process each")
    with OpenAIServer() as srv:
        env["OPENAI_API_BASE"] = srv.base_url
        for delay in DELAYS:
            srv.push_reply("```python\nfinal_answer('hi')\n```")
            seen = len(srv.requests)
            out = subprocess.run([sys.executable, "-c", CELL, str(delay)], capture_output=True, text=True, env=env,
                                 timeout=300)
            started = float(out.stdout.split("T0 ")[1].split()[0])
            waited = srv.requests[seen].at - started
            print(f"  cell run {delay:>3.0f} s after %load_ext: request after {waited:5.2f} s")
    print(f"  reference: import litellm alone, fresh process: {total_us / 1e6:.2f} s (-X importtime)")


if __name__ == "__main__":
    main()
