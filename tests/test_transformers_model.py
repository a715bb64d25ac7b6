"""TransformersModel on a tiny, randomly initialised Llama and a word-level tokenizer built here.

Nothing is downloaded (HF_HUB_OFFLINE=1): the model folder is made in tmp_path,
as ``save_pretrained`` writes it, and loaded back through ``from_pretrained``
exactly as a user's local model would be.
"""

from __future__ import annotations

import asyncio

import pytest

from smol_magic import CodeAgent
from smol_magic.core.model_spec import model_from_spec
from smol_magic.core.models import ModelError, TokenUsage
from smol_magic.core.transformers_model import TransformersModel

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega system user assistant : say hello").split()
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}assistant :{% endif %}")
MESSAGES = [{"role": "system", "content": "alpha beta"}, {"role": "user", "content": "say hello"}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    vocab = {token: i for i, token in enumerate(["[UNK]", "[PAD]", "<s>", "</s>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=2, eos_token_id=3, pad_token_id=1)
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def stream(model, stop=None):
    async def collect():
        return [d async for d in model.generate_stream(MESSAGES, stop)]

    return asyncio.run(collect())


def test_generates_from_a_local_model_and_counts_tokens(tiny_model: str):
    model = TransformersModel(tiny_model, max_new_tokens=12)

    reply = asyncio.run(model.generate(MESSAGES))

    words = reply.content.split()
    assert words and set(words) <= set(WORDS), reply.content
    prompt = "system : alpha beta user : say hello assistant :".split()
    assert reply.token_usage.input_tokens == len(prompt)
    assert 0 < reply.token_usage.output_tokens <= 12


def test_streaming_gives_the_same_greedy_text_in_pieces_then_usage(tiny_model: str):
    model = TransformersModel(tiny_model, max_new_tokens=12)
    whole = asyncio.run(model.generate(MESSAGES))

    deltas = stream(model)

    assert "".join(d.content for d in deltas) == whole.content
    assert len([d for d in deltas if d.content]) > 1, "the text arrives as it is generated"
    assert [d.token_usage for d in deltas if d.token_usage] == [whole.token_usage]


def test_a_stop_sequence_ends_the_reply_before_it(tiny_model: str):
    model = TransformersModel(tiny_model, max_new_tokens=12)
    words = asyncio.run(model.generate(MESSAGES)).content.split()
    stop_word = words[min(3, len(words) - 1)]
    expected = " ".join(words[:words.index(stop_word)])

    cut = asyncio.run(model.generate(MESSAGES, stop_sequences=[stop_word]))
    streamed = "".join(d.content for d in stream(model, [stop_word]))

    assert cut.content.strip() == expected
    assert streamed.strip() == expected


def test_a_tokenizer_without_a_chat_template_gets_plain_turns(tiny_model: str, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(tiny_model, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    model = TransformersModel(str(folder), max_new_tokens=4)

    reply = asyncio.run(model.generate(MESSAGES))

    assert model._load()[1].chat_template is None
    assert reply.token_usage.input_tokens == len("system: alpha beta user: say hello assistant:".split())
    assert set(reply.content.split()) <= set(WORDS)


def test_the_spec_names_a_local_model_and_an_agent_runs_on_it(tiny_model: str):
    model = model_from_spec(f"transformers:{tiny_model}")
    assert isinstance(model, TransformersModel) and model.model_id == tiny_model
    model.max_new_tokens = 6
    agent = CodeAgent(model=model, max_steps=1)

    answer = agent.run("say hello")  # a random model writes no code: the run ends at max_steps, with its text

    run = agent.runs[-1]
    assert run.action_steps[0].error == "no code in the reply"
    assert set(run.action_steps[0].model_output.split()) <= set(WORDS)
    assert isinstance(answer, str) and set(answer.split()) <= set(WORDS)
    assert run.token_usage.output_tokens > 0


def test_a_folder_without_a_model_is_a_clear_model_error(tmp_path):
    model = TransformersModel(str(tmp_path / "missing"))

    with pytest.raises(ModelError) as info:
        asyncio.run(model.generate(MESSAGES))

    assert str(info.value).startswith(f"{tmp_path / 'missing'}: cannot load the model")
    assert "\n" not in str(info.value)

