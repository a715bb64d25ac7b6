"""What does a ToolCallingAgent step cost, besides the model and the tool? And how long is its prompt?

Measured in one process:

1. the framework's own time per step: a ``ToolCallingAgent`` driven by a ``ScriptedModel`` whose
   replies are native tool calls (``add(a=1, b=2)``, then ``final_answer``), over many steps, minus
   the time of calling the tool itself (target <= 1 ms per step). Each call goes the whole way a
   notebook's goes: rendered as ``result = add(a=1, b=2)``, judged by the guard, approved (auto),
   run by the executor on the namespace with output capture, timeout and the data watch, observed.
   Also shown: the same with replies written as JSON in text (the fallback protocol), and with the
   ``KernelExecutor`` on a real ``InteractiveShell`` (the %%agent path).
   References measured in the same run: calling the tool directly (the floor), and, if smolagents
   is installed, its own ``ToolCallingAgent`` driven the same way (logging off, as ours renders nothing);
2. the tokens (tiktoken cl100k_base, offline from litellm's copy) of the default system prompt with
   no tools, beside smolagents' ToolCallingAgent and CodeAgent prompts if smolagents is installed.

Times are the process's CPU time (``time.process_time``: the machine's 2 cores are shared, and wall
time measures the neighbours too), the median of 5 runs of ``STEPS`` steps after one warm-up; the
conversation grows with the steps, so a longer run costs a little more per step (a 100-step run is
shown too). Run: ``python bench/tool_calling.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from smol_magic import ChatMessageToolCall, ModelResponse, ScriptedModel, ToolCallingAgent, tool  # noqa: E402

STEPS = 20
REPEATS = 5
TARGET_MS = 1.0


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def native_replies(steps: int) -> list[ModelResponse]:
    calls = [ModelResponse("", tool_calls=[ChatMessageToolCall(f"c{i}", "add", '{"a": 1, "b": 2}')])
             for i in range(steps - 1)]
    return calls + [ModelResponse("", tool_calls=[ChatMessageToolCall("end", "final_answer", '{"answer": 3}')])]


def text_replies(steps: int) -> list[str]:
    return (['Action: {"name": "add", "arguments": {"a": 1, "b": 2}}'] * (steps - 1)
            + ['Action: {"name": "final_answer", "arguments": {"answer": 3}}'])


def per_step_ms(run: Callable[[], Any], steps: int = STEPS) -> float:
    run()  # warm-up: imports, pydantic, caches
    times = []
    for _ in range(REPEATS):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times) / steps * 1000


def ours(replies: Callable[[int], list[Any]], executor: Callable[[], Any] | None = None,
         steps: int = STEPS) -> Callable[[], Any]:
    def run() -> Any:
        agent = ToolCallingAgent(tools=[add], model=ScriptedModel(replies(steps)), max_steps=steps + 1,
                                 executor=executor() if executor else None)
        assert agent.run("add, many times") == 3
    return run


def direct() -> None:
    for _ in range(STEPS):
        add(a=1, b=2)  # through Tool.__call__, which checks the arguments as the agent's call does


def smolagents_run() -> Callable[[], Any] | None:
    try:
        import smolagents
        from smolagents.models import ChatMessage, ChatMessageToolCall as Call, ChatMessageToolCallFunction as Fn
        from smolagents.monitoring import LogLevel
    except ImportError:
        return None

    @smolagents.tool
    def smol_add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first number
            b: the second number
        """
        return a + b

    class Scripted(smolagents.Model):
        def __init__(self) -> None:
            super().__init__(model_id="scripted")
            self.count = 0

        def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                     tools_to_call_from: Any = None, **kwargs: Any) -> Any:
            self.count += 1
            name, arguments = ("smol_add", {"a": 1, "b": 2}) if self.count < STEPS else ("final_answer", {"answer": 3})
            return ChatMessage(role="assistant", content="",
                               tool_calls=[Call(id=f"c{self.count}", type="function", function=Fn(name=name, arguments=arguments))])

    def run() -> Any:
        agent = smolagents.ToolCallingAgent(tools=[smol_add], model=Scripted(), max_steps=STEPS + 1,
                                            verbosity_level=LogLevel.OFF)
        assert agent.run("add, many times") == 3
    return run


def kernel_executor() -> Callable[[], Any]:
    from IPython.core.interactiveshell import InteractiveShell

    from smol_magic.jupyter.kernel_executor import KernelExecutor

    shell = InteractiveShell.instance()
    return lambda: KernelExecutor(shell)


def count_tokens(texts: dict[str, str]) -> dict[str, int]:
    import litellm  # noqa: F401 - only for where its tokenizer files are

    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers"))
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    return {name: len(encoding.encode(text)) for name, text in texts.items()}


def prompts() -> dict[str, str]:
    texts = {"smol-magic ToolCallingAgent (no tools, native calls)":
             ToolCallingAgent(tools=[], model=ScriptedModel([])).system_prompt(),
             "smol-magic ToolCallingAgent (no tools, calls in text)":
             ToolCallingAgent(tools=[], model=ScriptedModel([]), native_tools=False).system_prompt()}
    try:
        import smolagents
    except ImportError:
        return texts
    model = smolagents.LiteLLMModel(model_id="openai/x", api_base="http://127.0.0.1:9", api_key="k")
    texts["smolagents ToolCallingAgent (no tools)"] = smolagents.ToolCallingAgent(tools=[], model=model).system_prompt
    texts["smolagents CodeAgent (no tools)"] = smolagents.CodeAgent(tools=[], model=model).system_prompt
    return texts


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    floor = per_step_ms(direct)
    rows = [
        ("ToolCallingAgent, native calls, LocalPythonExecutor", per_step_ms(ours(native_replies))),
        ("ToolCallingAgent, calls in text, LocalPythonExecutor", per_step_ms(ours(text_replies))),
        ("ToolCallingAgent, native calls, KernelExecutor", per_step_ms(ours(native_replies, kernel_executor()))),
        ("ToolCallingAgent, native calls, 100-step run", per_step_ms(ours(native_replies, steps=100), steps=100)),
    ]
    smol = smolagents_run()
    smol_ms = per_step_ms(smol) if smol else None
    print(f"CPU time per step ({STEPS}-step runs, median of {REPEATS}); the tool call itself: {floor:.4f} ms")
    print(f"{'':56} {'ms/step':>8} {'overhead':>9} {'/ direct':>9} {'/ smolagents':>13}")
    for name, ms in rows:
        versus = f"{ms / smol_ms:13.2f}" if smol_ms else f"{'-':>13}"
        print(f"{name:56} {ms:8.3f} {ms - floor:9.3f} {ms / floor:9.0f} {versus}")
    if smol_ms:
        print(f"{'smolagents ToolCallingAgent (reference)':56} {smol_ms:8.3f} {smol_ms - floor:9.3f} "
              f"{smol_ms / floor:9.0f} {1:13.2f}")
    else:
        print("smolagents is not installed: no smolagents reference (pip install smolagents)")
    overhead = rows[0][1] - floor
    print(f"target: <= {TARGET_MS:g} ms framework overhead per step (native, plain Python): "
          f"{overhead:.3f} ms, {'met' if overhead <= TARGET_MS else 'NOT met'}")
    print()
    print("System prompt tokens (cl100k_base):")
    for name, count in count_tokens(prompts()).items():
        print(f"  {name:56} {count:6,}")


if __name__ == "__main__":
    main()
