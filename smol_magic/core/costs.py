"""What model calls cost, in US dollars, and the budget and token cap that bound a run.

Prices come from litellm's model cost map (``input_cost_per_token`` and
``output_cost_per_token`` of the model's entry). litellm is not imported for
this: importing it takes seconds and, unless ``LITELLM_LOCAL_MODEL_COST_MAP``
is set, fetches the map from the network. If litellm is already imported (a
``LiteLLMModel`` imports it with that variable set, see ``models._litellm``)
its ``litellm.model_cost`` is used, so prices a user registered with
``litellm.register_model`` count; otherwise the map file bundled with litellm
is read directly. Either way there is no network call, and a model the map
does not know has no price (None): the trace then shows its tokens only.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# litellm's cost map, read offline: in its own module, which the model clients read too
from .cost_map import BUNDLED_MAP, model_cost_map  # noqa: F401
from .models import TokenUsage

DEFAULT_REPLY_TOKENS = 500  # expected reply before the first one, when the model sets no max_tokens
CHARS_PER_TOKEN = 4  # the estimate of a text's tokens used across smol-magic


class BudgetReached(Exception):
    """The next model call would pass the run's budget or token cap: the run stops before it."""


def model_entry(model_id: str | None) -> Mapping[str, Any] | None:
    """The cost map's entry for a model: by its whole id (``gpt-4o-mini``, ``openrouter/openai/gpt-4o``),
    else by the id without its litellm provider prefix when the entry is that provider's (``openai/gpt-4o-mini``)."""
    if not model_id or not isinstance(model_id, str):
        return None
    try:
        table = model_cost_map()
        entry = table.get(model_id)
        if isinstance(entry, Mapping):
            return entry
        provider, _, rest = model_id.partition("/")
        entry = table.get(rest) if rest else None
        return entry if isinstance(entry, Mapping) and entry.get("litellm_provider") == provider else None
    except Exception:  # a malformed map must not stop a run: the model is unknown
        return None


def prices(model_id: str | None) -> tuple[float, float] | None:
    """(dollars per input token, per output token) of a model, or None if the cost map does not price it."""
    entry = model_entry(model_id)
    if not _priced(entry):
        return None
    return float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"])


def max_input_tokens(model_id: str | None) -> int | None:
    """The model's context window in input tokens, from the same entry that prices it."""
    entry = model_entry(model_id) or {}
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not math.isfinite(window) or window <= 0:
        return None
    return int(window)


def _priced(entry: Any) -> bool:
    return (isinstance(entry, Mapping) and _price_ok(entry.get("input_cost_per_token"))
            and _price_ok(entry.get("output_cost_per_token")))


def _price_ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def cost(model_id: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """Dollars for one call's tokens at the cost map's prices; None for a model it does not know."""
    found = prices(model_id)
    if found is None:
        return None
    return input_tokens * found[0] + output_tokens * found[1]


def priced(model_id: str | None, usage: TokenUsage) -> TokenUsage:
    """``usage`` with its cost, when the model did not report one, it reported tokens and its price is known."""
    if usage.cost is not None or not (usage.input_tokens or usage.output_tokens):
        return usage
    return dataclasses.replace(usage, cost=cost(model_id, usage.input_tokens, usage.output_tokens))


def format_cost(dollars: float | None) -> str:
    """Compact dollars: ``$1.23``, ``$0.0012``, ``<$0.0001``, ``$0``; "" when unknown."""
    if dollars is None:
        return ""
    if dollars <= 0:
        return "$0"
    if dollars < 0.0001:
        return "<$0.0001"
    if dollars < 1:
        return f"${dollars:.4f}"
    return f"${dollars:,.2f}"


def usage_text(usage: TokenUsage) -> str:
    """``2372 tokens in, 255 out · $0.0012`` (without the cost when it is unknown)."""
    text = f"{usage.input_tokens} tokens in, {usage.output_tokens} out"
    return f"{text} · {format_cost(usage.cost)}" if usage.cost is not None else text


# -- the budget -----------------------------------------------------------------


def message_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of a request: the messages' text and their tool calls' arguments."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        total += len(content) if isinstance(content, str) else len(json.dumps(content, default=repr))
        for call in message.get("tool_calls") or []:
            total += len(json.dumps(call, default=repr))
    return total


@dataclass
class Call:
    """One model call of a run, as the budget needs it: the characters sent and the usage reported."""

    chars: int
    usage: TokenUsage


def reply_tokens(model: Any, calls: list[Call]) -> int:
    """The reply expected of the next call: the model's cap on reply tokens if it sets one
    (``max_tokens``, ``max_completion_tokens``, ``max_new_tokens`` among its parameters), else the longest
    reply of this run so far, else ``DEFAULT_REPLY_TOKENS``."""
    params = getattr(model, "kwargs", None) or {}
    for name in ("max_tokens", "max_completion_tokens", "max_new_tokens"):
        value = params.get(name) if isinstance(params, dict) else None
        if value is None:
            value = getattr(model, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    longest = max((call.usage.output_tokens for call in calls), default=0)
    return longest or DEFAULT_REPLY_TOKENS


def estimate(model: Any, messages: list[dict[str, Any]], calls: list[Call]) -> TokenUsage:
    """The next call's tokens and cost, before it is made.

    The prompt: the prompt tokens the provider reported for this run's previous call (the next prompt
    holds it all again) plus the characters added since, at ``CHARS_PER_TOKEN``; a request shorter than
    the previous one (older steps compacted, a planning prompt gone) in proportion to its characters;
    before any report, the whole request's characters at that rate. The reply: ``reply_tokens``. The
    cost is None when the model's price is unknown.
    """
    chars = message_chars(messages)
    last = next((call for call in reversed(calls) if call.usage.input_tokens), None)
    if last is None:
        prompt = -(-chars // CHARS_PER_TOKEN)
    elif chars >= last.chars:
        prompt = last.usage.input_tokens + -(-(chars - last.chars) // CHARS_PER_TOKEN)
    else:
        prompt = -(-last.usage.input_tokens * chars // max(last.chars, 1))
    reply = reply_tokens(model, calls)
    return TokenUsage(prompt, reply, cost(getattr(model, "model_id", None), prompt, reply))


@dataclass
class Limits:
    """A run's bounds and what it has used so far; ``who`` names whose they are in the message."""

    budget: float | None = None  # US dollars
    max_tokens: int | None = None  # input and output tokens of all calls
    used: TokenUsage = field(default_factory=TokenUsage)
    who: str = ""  # "" for the run itself, "the manager 'research'" for a manager's

    def check(self, next_call: TokenUsage, model_id: str | None) -> None:
        """Raise ``BudgetReached`` if ``next_call`` would take the run past its token cap or its budget."""
        used = self.used
        of = f" of {self.who}" if self.who else ""
        if self.max_tokens:
            spent = used.input_tokens + used.output_tokens
            more = next_call.input_tokens + next_call.output_tokens
            if spent + more > self.max_tokens:
                raise BudgetReached(
                    f"token cap {self.max_tokens:,}{of} reached: used {spent:,} tokens, the next call would use "
                    f"about {more:,}; raise --max-tokens (max_tokens=) to continue")
        if self.budget:
            if next_call.cost is None:
                raise BudgetReached(
                    f"budget {format_cost(self.budget)}{of} cannot be checked: the price of {model_id!r} is not "
                    "in litellm's cost map; bound the run with --max-tokens (max_tokens=) instead, or register the "
                    "model's price with litellm.register_model")
            spent = used.cost or 0.0
            if spent + next_call.cost > self.budget:
                raise BudgetReached(
                    f"budget {format_cost(self.budget)}{of} reached: spent {format_cost(spent)}, the next call "
                    f"would cost about {format_cost(next_call.cost)}; raise --budget (budget=) to continue")


def check_budget(value: Any, name: str = "budget") -> float | None:
    """A budget in US dollars as given (a number, or text such as "0.05" or "$0.05"); None or 0: no budget.

    Raises ValueError with what to write instead.
    """
    if value is None:
        return None
    example = f"{name} 0.05" if name.startswith("-") else f"{name}=0.05"
    text = str(value).strip().lstrip("$") if isinstance(value, str) else value
    try:
        dollars = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is an amount in US dollars, e.g. {example}; got {value!r}") from None
    if not math.isfinite(dollars) or dollars < 0:
        raise ValueError(f"{name} must be a positive amount in US dollars, e.g. {example}; got {value!r}")
    return dollars or None


def check_max_tokens(value: Any, name: str = "max_tokens") -> int | None:
    """A token cap as given (an int, or its text); None or 0: no cap. Raises ValueError saying what to write."""
    if value is None:
        return None
    example = f"{name} 20000" if name.startswith("-") else f"{name}=20000"
    try:
        number = int(value.strip().replace("_", "").replace(",", "")) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{name} is a whole number of tokens, e.g. {example}; got {value!r}") from None
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise ValueError(f"{name} must be a positive whole number of tokens, e.g. {example}; got {value!r}")
    return number or None
