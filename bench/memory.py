"""Do long runs stay linear? Memory JSON size and input tokens per step at 10, 50 and 100 steps.

A scripted run whose every step prints 150 lines (~8,700 characters, ~2,200 tokens: a
modest table or log), run for 10, 50 and 100 steps, with compaction off and on (context
window 32,000 tokens, compacting at 75 %). For each: the size of ``memory.to_json()``,
the size the same memory had in the format before this change (every step's request
written whole: ``step.to_dict()`` of each step), the input tokens of the last request
and the largest one (a ScriptedModel counts characters / 4), how many steps the last
request had compacted, the time ``to_json`` took, and the memory the run's steps hold in the
process (tracemalloc, the ScriptedModel's own copies of its requests dropped: consecutive steps
share the text of their messages). Then the ratio of sizes at
100 vs 50 steps: about 2 for a size linear in the steps, about 4 for one that grows
with their square. Measured here: 2.02 with compaction off and on (the format before: 3.88
off, 46 MB at 100 steps against 2.7 MB now); with compaction on, the largest request stays at
about 24,000 tokens (75 % of the window) where it reaches 216,000 without; to_json takes
about 40 ms at 100 steps; the run's steps hold about 4.7 MB in memory at 100 steps.

Run it as ``python bench/memory.py``.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc

from smol_magic import CodeAgent, ScriptedModel

LINES = 150
WINDOW = 32_000


def fence(code: str) -> str:
    return f"Thought: print the next rows.\n```python\n{code}\n```"


def run(steps: int, compact: bool) -> tuple[CodeAgent, int]:
    """The finished agent, and the bytes its run left allocated (its memory, mostly)."""
    gc.collect()
    tracemalloc.start()
    agent = _run(steps, compact)
    agent.model.requests.clear()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return agent, held


def _run(steps: int, compact: bool) -> CodeAgent:
    replies = [fence(f'print("\\n".join("step {n} row %d: %s" % (i, "x" * 40) for i in range({LINES})))')
               for n in range(1, steps)] + [fence(f"final_answer({steps})")]
    agent = CodeAgent(model=ScriptedModel(replies), max_steps=steps, context_window=WINDOW,
                      compact_at=0.75 if compact else None)
    assert agent.run("print many rows") == steps
    return agent


def main() -> None:
    print(f"each step prints {LINES} lines; context window {WINDOW:,} tokens, compaction at 75 %\n")
    print(f"{'compaction':<11}{'steps':>6}{'memory JSON':>14}{'before (whole)':>16}{'last input':>12}"
          f"{'max input':>11}{'compacted':>11}{'to_json':>10}{'in memory':>12}")
    sizes: dict[tuple[bool, int], tuple[int, int]] = {}
    run(2, False)  # warm-up: first-time allocations (prompts, caches) are not a run's
    for compact in (False, True):
        for steps in (10, 50, 100):
            agent, held = run(steps, compact)
            start = time.perf_counter()
            text = agent.memory.to_json()
            took = time.perf_counter() - start
            whole = len(json.dumps({"system_prompt": agent.memory.system_prompt,
                                    "steps": [s.to_dict() for s in agent.memory.steps]}))
            inputs = [s.token_usage.input_tokens for s in agent.memory.action_steps]
            last = agent.memory.action_steps[-1].compaction
            sizes[compact, steps] = (len(text), whole)
            print(f"{'on' if compact else 'off':<11}{steps:>6}{len(text):>14,}{whole:>16,}{inputs[-1]:>12,}"
                  f"{max(inputs):>11,}{last.steps if last else 0:>11}{took * 1000:>8.1f} ms{held / 1e6:>9.1f} MB")
    print()
    for compact in (False, True):
        (new50, old50), (new100, old100) = sizes[compact, 50], sizes[compact, 100]
        print(f"compaction {'on ' if compact else 'off'}: size at 100 / 50 steps = {new100 / new50:.2f} "
              f"(before, whole requests: {old100 / old50:.2f})")


if __name__ == "__main__":
    main()
