"""``--model`` strings -> model clients: ``hf:``, ``openai-server:``, ``transformers:``, else litellm."""

from __future__ import annotations

from .models import BaseModel, InferenceClientModel, LiteLLMModel, OpenAIServerModel
from .transformers_model import TransformersModel

SPEC_HELP = ("a litellm id (openai/gpt-4o-mini), hf:org/model, openai-server:MODEL@URL "
             "(e.g. openai-server:llama3@http://localhost:8000/v1), or transformers:PATH")


def model_from_spec(spec: str) -> BaseModel:
    """The model a ``--model`` string names; a malformed one is a ``ValueError`` that shows the right spelling.

    ``openai-server:MODEL@URL`` splits at the last ``@`` before ``http://`` or
    ``https://``: model ids may hold ``@`` or ``:``, a URL always starts so.
    """
    spec = spec.strip()
    if spec.startswith("hf:"):
        if not spec[3:].strip():
            raise ValueError(f"{spec!r}: give the model after hf:, e.g. hf:Qwen/Qwen2.5-Coder-32B-Instruct")
        return InferenceClientModel(spec[3:].strip())
    if spec.startswith("openai-server:"):
        rest = spec[len("openai-server:"):]
        at = max(rest.rfind("@http://"), rest.rfind("@https://"))
        model, url = (rest[:at].strip(), rest[at + 1:].strip()) if at >= 0 else (rest.strip(), "")
        if not model or not url:
            raise ValueError(f"{spec!r}: write openai-server:MODEL@URL, e.g. openai-server:llama3@http://localhost:8000/v1 "
                             "(the model's name on that server, then the server's http(s) address)")
        return OpenAIServerModel(model, api_base=url)
    if spec.startswith("transformers:"):
        path = spec[len("transformers:"):].strip()
        if not path:
            raise ValueError(f"{spec!r}: give a local model folder (or a downloaded Hub id) after transformers:, "
                             "e.g. transformers:./my-model")
        return TransformersModel(path)
    return LiteLLMModel(spec)
