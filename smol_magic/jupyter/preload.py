"""What loads in the background at ``%load_ext``, so the first ``%%agent`` cell's request leaves at once."""

from __future__ import annotations

import importlib
import sys
import threading

from ..core.model_spec import model_from_spec
from ..core.models import LiteLLMModel


def warm_up() -> None:
    """What the first %%agent cell needs besides the magic: the widget trace (ipywidgets), the prompt
    templates (PyYAML), litellm's cost map and httpx (the direct route to an OpenAI-compatible server).

    Loaded in a thread at %load_ext, about half a second of work (bench/first_reply.py measures what
    it costs the user's cells meanwhile), so the first %%agent's request leaves without waiting for it.
    litellm itself is loaded early only for a configured model that needs it (``preload_litellm``).
    """
    try:
        from ..core import costs, prompts

        for name in ("code_agent.yaml", "toolcalling_agent.yaml"):
            prompts._default(name)
        costs.model_cost_map()
        import httpx

        httpx.AsyncHTTPTransport(verify=False)  # imports httpcore, h11, h2: what the first request's client needs
        for name in ("anyio._backends._asyncio", "anyio.streams.tls", "encodings.idna"):  # and its first request
            importlib.import_module(name)

        from . import widgets  # noqa: F401
    except Exception:  # nothing is lost: the first run loads what it needs itself
        pass


def preload_litellm(spec: str) -> bool:
    """Start importing litellm in a thread when the configured model's first request will need it.

    ``import litellm`` takes seconds; begun at ``%load_ext`` (or when ``AgentMagics.model`` is set), it is
    done, or nearly, by the first ``%%agent`` cell. It slows the user's cells meanwhile (about 1.3x a
    small cell, bench/first_reply.py), so only for a model that needs it: not one core/direct.py sends
    itself (a local OpenAI-compatible server, hosted OpenAI and DeepSeek chat models whose request litellm
    would send unchanged, Anthropic and Gemini chat models' and Ollama models' text requests), a ScriptedModel
    variable or a transformers model.
    """
    spec = (spec or "").strip()
    if not spec or spec.isidentifier() or "litellm" in sys.modules:
        return False
    try:
        model = model_from_spec(spec)
    except Exception:  # a bad spec is said by the first %%agent cell, not here
        return False
    if not (isinstance(model, LiteLLMModel) and model.needs_litellm()):
        return False
    threading.Thread(target=_import_litellm, name="smol-magic litellm import", daemon=True).start()
    return True


def _import_litellm() -> None:
    try:
        from ..core.models import _litellm

        _litellm()
    except Exception:  # nothing is lost: the first request imports it and says what is wrong
        pass
