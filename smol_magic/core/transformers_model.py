"""A local ``transformers`` model on the CPU, behind the same async protocol as the API clients.

``transformers`` and ``torch`` (the optional extra ``smol-magic[transformers]``)
are imported on first use. Loading and generating run on a daemon thread, so the
kernel stays responsive; a stream comes token by token through
``TextIteratorStreamer`` and stops when the agent stops listening (Interrupt).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Iterator

from .models import BaseModel, Messages, ModelError, ModelResponse, StreamDelta, TokenUsage, short_error
from .threads import in_thread, iterate_in_thread


class TransformersModel(BaseModel):
    """``TransformersModel("path/or/hub-id")``: a causal LM and its tokenizer, loaded once, on the CPU.

    Extra keyword arguments go to ``model.generate`` (``temperature``, ``do_sample``, ...).
    """

    def __init__(self, model_id_or_path: str, max_new_tokens: int = 1024, device: str = "cpu",
                 timeout: float = 600.0, **kwargs: Any):
        super().__init__(str(model_id_or_path), max_retries=0, timeout=timeout, **kwargs)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on first use (on the worker thread: it may take a while)."""
        with self._lock:
            if self._loaded is None:
                try:
                    from transformers import AutoModelForCausalLM, AutoTokenizer
                except ImportError as exc:
                    raise ModelError("TransformersModel needs transformers and torch: "
                                     "pip install 'smol-magic[transformers]'") from exc
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_id)
                    model = AutoModelForCausalLM.from_pretrained(self.model_id).to(self.device)
                except (OSError, ValueError) as exc:
                    raise ModelError(f"{self.model_id}: cannot load the model ({short_error(exc, 200)}); give a "
                                     "folder holding a transformers model and its tokenizer") from exc
                model.eval()
                self._loaded = (model, tokenizer)
            return self._loaded

    def _inputs(self, tokenizer: Any, messages: Messages) -> Any:
        """The prompt as token ids: the tokenizer's chat template, or plain "role: text" turns if it has none."""
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        prompt = "".join(f"{m['role']}: {m.get('content') or ''}\n" for m in messages) + "assistant:"
        inputs = tokenizer(prompt, return_tensors="pt")
        inputs.pop("token_type_ids", None)  # BERT-style tokenizers add it; causal LMs refuse it
        return inputs

    def _generate_kwargs(self, tokenizer: Any, inputs: Any, stop: threading.Event | None,
                         stop_sequences: list[str] | None) -> dict[str, Any]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        prompt_length = int(inputs["input_ids"].shape[-1])

        class Stopped(StoppingCriteria):
            """End at the next token when the agent stopped listening, or once a stop sequence is out.

            Checked on the decoded text, not with generate's ``stop_strings``, which
            depends on how the tokenizer spells its vocabulary and fails on some.
            """

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                if stop is not None and stop.is_set():
                    return True
                if not stop_sequences:
                    return False
                text = tokenizer.decode(input_ids[0][prompt_length:], skip_special_tokens=True)
                return any(s and s in text for s in stop_sequences)

        params: dict[str, Any] = dict(**inputs.to(self.device), max_new_tokens=self.max_new_tokens,
                                      stopping_criteria=StoppingCriteriaList([Stopped()]))
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            params["pad_token_id"] = tokenizer.eos_token_id
        params.update(self.kwargs)
        return params

    def _run(self, messages: Messages, stop_sequences: list[str] | None) -> ModelResponse:
        import torch

        model, tokenizer = self._load()
        inputs = self._inputs(tokenizer, messages)
        prompt_length = inputs["input_ids"].shape[-1]
        with torch.inference_mode():
            output = model.generate(**self._generate_kwargs(tokenizer, inputs, None, stop_sequences))
        new_tokens = output[0][prompt_length:]
        text = _cut(tokenizer.decode(new_tokens, skip_special_tokens=True), stop_sequences)
        return ModelResponse(text, TokenUsage(int(prompt_length), int(len(new_tokens))))

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None) -> ModelResponse:
        try:
            return await asyncio.wait_for(in_thread(lambda: self._run(messages, stop_sequences)), self.timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ModelError(self._timed_out(1)) from exc
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.model_id}: {short_error(exc)}") from exc

    def _stream(self, stop: threading.Event, messages: Messages,
                stop_sequences: list[str] | None) -> Iterator[str | TokenUsage]:
        """On a worker thread: generate on one more thread, yield the text as the streamer decodes it."""
        import torch
        from transformers import TextIteratorStreamer

        model, tokenizer = self._load()
        inputs = self._inputs(tokenizer, messages)
        prompt_length = int(inputs["input_ids"].shape[-1])
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        generated: list[int] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    output = model.generate(**self._generate_kwargs(tokenizer, inputs, stop, stop_sequences),
                                            streamer=streamer)
                generated.append(int(output.shape[-1]) - prompt_length)
            except BaseException as exc:  # noqa: BLE001 - reported after the stream ends
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=work, name="smol-magic-transformers", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()  # the streamer ends just before generate() returns the token count
        if failure:
            raise failure[0]
        yield TokenUsage(prompt_length, generated[0] if generated else 0)

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None
    ) -> AsyncIterator[StreamDelta]:
        deadline = asyncio.get_running_loop().time() + self.timeout
        pieces = iterate_in_thread(lambda stop: self._stream(stop, messages, stop_sequences), deadline,
                                   lambda: ModelError(self._timed_out(1)))
        text, cut = "", False
        try:
            async for item in pieces:
                if isinstance(item, TokenUsage):
                    yield StreamDelta("", item)
                elif not cut:
                    # Servers leave the stop sequence out of the reply; so do we (generation ends right after it).
                    full = text + item
                    kept = _cut(full, stop_sequences)
                    if len(kept) > len(text):
                        yield StreamDelta(kept[len(text):])
                    text, cut = kept, len(kept) < len(full)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.model_id}: {short_error(exc)}") from exc
        finally:
            await pieces.aclose()


def _cut(text: str, stop_sequences: list[str] | None) -> str:
    """The text before the first stop sequence."""
    cuts = [text.find(s) for s in stop_sequences or [] if s and s in text]
    return text[:min(cuts)] if cuts else text
