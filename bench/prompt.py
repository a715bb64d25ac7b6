"""How many input tokens is the CodeAgent's system prompt (no tools), next to smolagents' own?

Every request repeats the system prompt, so it is paid on every step. Counted with tiktoken's
``cl100k_base`` encoding. tiktoken downloads its encodings on first use, and there is no internet
here: litellm ships the cl100k file (``litellm/litellm_core_utils/tokenizers``), so
``TIKTOKEN_CACHE_DIR`` points there (found without importing litellm). Target: <= 400 tokens.

smolagents' CodeAgent with no tools of its own (it still lists ``final_answer``), if smolagents is
installed (the ``smolagents`` extra, part of the ``test`` extra).

Run it as ``python bench/prompt.py`` from anywhere.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_TOKENS = 400


def cl100k():
    """tiktoken's cl100k_base, read from litellm's bundled copy: no download."""
    spec = importlib.util.find_spec("litellm")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        tokenizers = Path(folder) / "litellm_core_utils" / "tokenizers"
        if tokenizers.is_dir():
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tokenizers))
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def ours() -> str:
    from smol_magic import CodeAgent, ScriptedModel

    return CodeAgent(model=ScriptedModel([])).system_prompt()


def smolagents_prompt() -> str | None:
    try:
        import smolagents
    except ImportError:
        return None

    class Model:  # the prompt is built without calling the model
        model_id = "none"

        def generate(self, *args, **kwargs):
            raise NotImplementedError

    return smolagents.CodeAgent(tools=[], model=Model()).system_prompt


def main() -> int:
    encoding = cl100k()
    mine = len(encoding.encode(ours()))
    print(f"CodeAgent system prompt, no tools (cl100k_base tokens): {mine}   target <= {TARGET_TOKENS}: "
          f"{'ok' if mine <= TARGET_TOKENS else 'OVER'}")
    theirs = smolagents_prompt()
    if theirs is None:
        print("smolagents is not installed: pip install 'smol-magic[smolagents]' to compare")
    else:
        import smolagents

        count = len(encoding.encode(theirs))
        print(f"smolagents {smolagents.__version__} CodeAgent(tools=[]) system prompt: {count} ({count / mine:.1f}x)")
    return 0 if mine <= TARGET_TOKENS else 1


if __name__ == "__main__":
    sys.exit(main())
