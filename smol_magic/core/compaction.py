"""Long runs stay inside the model's context window: older steps are compacted in what is sent.

Before each request the agent estimates its input tokens: the prompt tokens the provider
reported for the previous request, plus about one token per 4 characters of the messages
added since (4 characters per token for everything when no usage was reported). When that
passes ``compact_at`` (a share, 0.75 by default) of the model's context window, the oldest
action steps are compacted: each observation is replaced by a short summary (its first and
last lines and "N lines left out"), while the model's replies, and so its code and tool
calls, are kept, and the latest ``KEEP_RECENT`` steps stay whole. The summary is made
here, deterministically: no extra model call, so it costs nothing and a replay sends
the same requests.

Compaction moves in jumps: once past the threshold, every step but the latest few is
compacted, and the boundary stays there (read back from the previous request's
``Compaction``) until the threshold is passed again. So consecutive requests share a
long unchanged prefix: the provider's prompt cache keeps working and the saved memory
writes each message once (``memory.RequestWriter``).

Only what is sent changes: each step keeps its observation whole in memory, the trace and
the exports; the step's ``model_input_messages`` are the compacted request as sent, and
its ``compaction`` says what was summarised ("what the model saw" in the trace shows it).
Each ``tool`` answer keeps its place after the call it answers, its id unchanged.

The context window comes from the agent (``context_window=``), else the model
(a ``context_window`` attribute), else litellm's cost map (``max_input_tokens``, read
offline by ``costs``, the entry that also prices the model). With none known, nothing is compacted.
"""

from __future__ import annotations

from typing import Any

from .costs import CHARS_PER_TOKEN, max_input_tokens, message_chars
from .memory import ActionStep, AgentMemory, Compaction, MemoryStep, alternate_roles, shared_prefix

DEFAULT_COMPACT_AT = 0.75
KEEP_RECENT = 3  # the latest action steps sent whole
HEAD_LINES, TAIL_LINES = 3, 2  # what a summarised observation keeps
LINE_CHARS = 200  # longest kept line of a summary

Messages = list[dict[str, Any]]


def context_window(model: Any) -> int | None:
    """The model's context window in input tokens: its ``context_window`` attribute, else litellm's cost map."""
    for candidate in (model, getattr(model, "inner", None)):  # a RecordingModel wraps the real one
        if candidate is None:
            continue
        window = getattr(candidate, "context_window", None)
        if isinstance(window, int) and window > 0:
            return window
        model_id = getattr(candidate, "model_id", None)
        if isinstance(model_id, str):
            # A ReplayModel ("replay:openai/gpt-4o") stands for the recorded model: it must compact as that one
            # did, or its requests would differ from the recording's.
            found = max_input_tokens(model_id.removeprefix("replay:"))
            if found:
                return found
    return None


def summarise(text: str) -> str:
    """The first and last lines of ``text``, each at most ``LINE_CHARS``, and how many lines were left out."""
    lines = text.splitlines()
    if len(lines) <= HEAD_LINES + TAIL_LINES + 1 and all(len(line) <= LINE_CHARS for line in lines):
        return text
    head, tail = lines[:HEAD_LINES], lines[HEAD_LINES:][-TAIL_LINES:] if len(lines) > HEAD_LINES else []
    left = len(lines) - len(head) - len(tail)
    clipped = [_clip_line(line) for line in head]
    if left:
        clipped.append(f"… [{left} line{'s' if left != 1 else ''} left out: an older observation, "
                       "summarised to fit the context window] …")
    return "\n".join(clipped + [_clip_line(line) for line in tail])


def _clip_line(line: str) -> str:
    if len(line) <= LINE_CHARS:
        return line
    return f"{line[:LINE_CHARS]}… [{len(line) - LINE_CHARS:,} characters left out]"


def compacted_messages(step: ActionStep) -> Messages:
    """The step's messages with its observations summarised: the reply (code, tool calls) as it was,
    each ``tool`` answer still answering its call's id."""
    messages = []
    for message in step.to_messages():
        if message["role"] in ("user", "tool"):
            message = {**message, "content": summarise(message.get("content") or "")}
        messages.append(message)
    return messages


def conversation(memory: AgentMemory, compacted: int) -> Messages:
    """The memory's messages, with the oldest ``compacted`` action steps compacted."""
    messages = [{"role": "system", "content": memory.system_prompt}] if memory.system_prompt else []
    seen = 0
    for step in memory.steps:
        if isinstance(step, ActionStep):
            seen += 1
            if seen <= compacted:
                messages.extend(compacted_messages(step))
                continue
        messages.extend(step.to_messages())  # type: ignore[attr-defined]
    return messages


def tokens(messages: Messages) -> int:
    """Estimated tokens of ``messages``: the budget's estimate (``costs.CHARS_PER_TOKEN``), tool calls included."""
    return message_chars(messages) // CHARS_PER_TOKEN


def last_request(memory: AgentMemory) -> MemoryStep | None:
    """The latest step of the conversation that sent a request (an action or a plan)."""
    for step in reversed(memory.steps):
        if getattr(step, "model_input_messages", None):
            return step
    return None


def request(memory: AgentMemory, window: int | None, compact_at: float | None,
            extra: Messages | None = None, keep_recent: int = KEEP_RECENT) -> tuple[Messages, Compaction | None]:
    """The next request's messages (the conversation, then ``extra``), compacted to fit ``compact_at`` of
    ``window``; and what was compacted, or None.

    Equal messages are the previous request's own objects, so a long run's steps share their text in memory.
    """
    previous = last_request(memory)
    sent: Messages = getattr(previous, "model_input_messages", None) or []
    before = getattr(previous, "compaction", None)
    actions = [s for s in memory.steps if isinstance(s, ActionStep)]
    # Compacted as far as the previous request was; compaction turned off (or no window): sent whole.
    done = min(before.steps if before else 0, len(actions)) if window and compact_at else 0
    extra = list(extra or [])
    messages = alternate_roles(conversation(memory, done) + extra)
    estimate = _estimate(messages, previous, sent)
    if window and compact_at and estimate > compact_at * window:
        for keep in (keep_recent, 1):
            target = max(done, len(actions) - keep)
            if target > done:
                smaller = alternate_roles(conversation(memory, target) + extra)
                estimate = max(0, estimate - (tokens(messages) - tokens(smaller)))
                messages, done = smaller, target
            if estimate <= compact_at * window:
                break
    messages = _share(messages, sent)
    if not done:
        return messages, None
    shown = next((s.model_input_messages for s in reversed(actions) if s.model_input_messages), [])
    return messages, Compaction(steps=done, numbers=_ranges([s.step_number for s in actions[:done]]),
                                window=window or 0, estimate=estimate, since=shared_prefix(messages, shown))


def _estimate(messages: Messages, previous: MemoryStep | None, sent: Messages) -> int:
    """The provider's count for the previous request plus chars / 4 of what is new; chars / 4 alone without one."""
    reported = getattr(getattr(previous, "token_usage", None), "input_tokens", 0) or 0
    if not reported:
        return tokens(messages)
    return reported + tokens(messages[shared_prefix(messages, sent):])


def _share(messages: Messages, sent: Messages) -> Messages:
    """``messages`` with each one equal to the previous request's at its place replaced by that very object."""
    shared = list(messages)
    for i, old in enumerate(sent[:len(messages)]):
        if old is not messages[i] and old == messages[i]:
            shared[i] = old
    return shared


def _ranges(numbers: list[int]) -> list[list[int]]:
    """[1, 2, 3, 1, 2] -> [[1, 3], [1, 2]]: consecutive step numbers as [first, last]."""
    ranges: list[list[int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ranges
