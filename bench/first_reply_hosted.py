"""The first %%agent request of a fresh kernel for a hosted model: 0, 3 and 8 s after ``%load_ext``.

Six kinds of configured model (``SMOL_MAGIC_MODEL``), each in a fresh process per row:

- ``openai/gpt-4o-mini`` (a hosted OpenAI chat model) and ``deepseek/deepseek-chat``: litellm sends
  their requests unchanged, so core/direct.py sends them itself and litellm is never imported;
- ``gemini/gemini-2.5-flash`` (Google AI Studio): core/direct_gemini.py builds the generateContent
  request litellm would build, and litellm is never imported;
- ``anthropic/claude-sonnet-4-5``: litellm translates its text requests to Anthropic's Messages API,
  and core/direct_anthropic.py sends the same body itself, so litellm is never imported either (before,
  ``%load_ext`` started importing it in a thread and the first cell waited for what was left of it);
- ``ollama/llama3.1`` (the README's local model): core/direct_ollama.py builds litellm's ``/api/generate``
  request (its ``ollama_pt`` prompt), and litellm is never imported;
- ``openai-server:local-model@URL`` (``OpenAIServerModel``): the ``openai`` client's request, posted
  without importing ``openai`` (about a second) or litellm.

The requests go to the local test server (``OPENAI_API_BASE``, ``DEEPSEEK_API_BASE``, ``GEMINI_API_BASE``,
``OLLAMA_API_BASE`` and ``ANTHROPIC_API_BASE`` stand in for the providers), so nothing leaves the machine; the time is from running the cell to the server
receiving the request, next to a plain ``import litellm`` in a fresh process (what the cell waited for
before). A real hosted request adds the TLS setup, printed on its own. The target (issue 17) is 0.5 s
for the cell run at once after ``%load_ext`` (Run All). Run it as ``python bench/first_reply_hosted.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from openai_server import OpenAIServer  # noqa: E402

TARGET = 0.5
DELAYS = (0.0, 3.0, 8.0)
MODELS = (("openai/gpt-4o-mini", "direct"), ("deepseek/deepseek-chat", "direct"),
          ("gemini/gemini-2.5-flash", "direct"), ("anthropic/claude-sonnet-4-5", "direct"),
          ("ollama/llama3.1", "direct"),
          ("openai-server:local-model@{base}", "direct"))
CELL = textwrap.dedent("""
    import sys, time
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "smol_magic")
    time.sleep(float(sys.argv[1]))  # the person reads, loads data, types the task
    print("T0", time.monotonic())
    ip.run_cell("%%agent -o answer --approve never\\nSay hi.")
    print("LITELLM", "litellm" in sys.modules, "OPENAI", "openai" in sys.modules)
""")


def import_seconds(env: dict[str, str], statement: str) -> float:
    """The cumulative import time of a statement's modules in a fresh process (``-X importtime``)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                         env=env)
    return max(int(line.split("|")[1]) for line in out.stderr.splitlines() if line.startswith("import time:")
               and line.split("|")[1].strip().isdigit()) / 1e6


def tls_seconds(env: dict[str, str]) -> float:
    """What a real https request adds once: the default TLS context (certificates loaded), fresh process."""
    code = "import time, httpx; t = time.perf_counter(); httpx.create_ssl_context(); print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout)


def main() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "DEEPSEEK_", "GEMINI_", "GOOGLE_", "PALM_", "OLLAMA_"))}
    env.update(OPENAI_API_KEY="sk-bench", DEEPSEEK_API_KEY="sk-deep-bench", ANTHROPIC_API_KEY="sk-ant-bench",
               GEMINI_API_KEY="gm-bench",
               SMOL_MAGIC_STORE="",
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    print("first request of a %%agent cell in a fresh process, run 0/3/8 s after %load_ext; "
          f"target <= {TARGET} s at 0 s (Run All)")
    with OpenAIServer() as srv:
        env.update(OPENAI_API_BASE=srv.base_url, DEEPSEEK_API_BASE=srv.base_url, GEMINI_API_BASE=srv.base_url,
                   ANTHROPIC_API_BASE=srv.base_url.removesuffix("/v1"),
                   OLLAMA_API_BASE=srv.base_url.removesuffix("/v1"))
        for model, route in MODELS:
            model = model.format(base=srv.base_url)
            print(f"SMOL_MAGIC_MODEL={model} ({route} route)")
            for delay in DELAYS:
                srv.push_reply("```python\nfinal_answer('hi')\n```")
                seen = len(srv.requests)
                out = subprocess.run([sys.executable, "-c", CELL, str(delay)], capture_output=True, text=True,
                                     env=dict(env, SMOL_MAGIC_MODEL=model), timeout=300)
                if "T0 " not in out.stdout or len(srv.requests) <= seen:
                    sys.exit(f"the cell sent no request:\n{out.stdout}\n{out.stderr}")
                started = float(out.stdout.split("T0 ")[1].split()[0])
                waited = srv.requests[seen].at - started
                imported = out.stdout.split("LITELLM ")[1].split()[0] == "True" if "LITELLM " in out.stdout else "?"
                client = out.stdout.split("OPENAI ")[1].split()[0] == "True" if "OPENAI " in out.stdout else "?"
                verdict = ("met" if waited <= TARGET else "NOT met") if delay == 0 else ""
                print(f"  cell run {delay:>3.0f} s after %load_ext: request after {waited:5.2f} s"
                      f"   (litellm imported: {imported}, openai: {client}) {verdict}")
    print(f"reference: import litellm alone, fresh process: {import_seconds(env, 'import litellm'):.2f} s "
          "(-X importtime)")
    print(f"not in the rows: a real https request's TLS context, once per process: {tls_seconds(env):.2f} s")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.0f} s)")
