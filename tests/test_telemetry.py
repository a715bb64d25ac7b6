"""OpenTelemetry traces of runs, received by a real OTLP/HTTP collector on 127.0.0.1 (tests/otlp_receiver.py).

The agents talk to the local OpenAI-compatible server (tests/openai_server.py), which reports
token usage, so the spans carry the tokens a provider reported. Runs that must not import the
SDK (tracing off, or the SDK missing) run in a fresh interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openai_server import OpenAIServer
from otlp_receiver import Blackhole, OTLPReceiver, ReceivedSpan, tree

from smol_magic import (
    CodeAgent, ModelResponse, OpenAIServerModel, Renderer, ScriptedModel, TokenUsage, ToolCallingAgent, tool,
)
from smol_magic.core import costs, telemetry
from smol_magic.core.approval import Decision, ModeApprover
from smol_magic.core.memory import ActionStep
from smol_magic.safety import redact

SECRET = "sk-proj-Zq81xWvT4mLkP0aRj7sHn2Bd"
TESTS = Path(__file__).parent


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers.

    Args:
        a: the first
        b: the second
    """
    return a + b


@tool
def explode(why: str) -> str:
    """Always fails.

    Args:
        why: what to say
    """
    raise ValueError(why)


class Person:
    """Approves every action, as a click would; remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def approve(self, step: ActionStep) -> Decision:
        self.asked.append(step.code or "")
        return Decision("run", by_person=True)


def py(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture
def receiver():
    with OTLPReceiver() as rec:
        yield rec


@pytest.fixture
def traced(receiver, monkeypatch):
    for name in telemetry.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert telemetry.instrument(endpoint=receiver.endpoint)
    yield receiver
    telemetry.reset()


def model(srv: OpenAIServer) -> OpenAIServerModel:
    return OpenAIServerModel("test-model", api_base=srv.base_url, api_key="k", retry_base_delay=0.001)


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str | None = None) -> list[ReceivedSpan]:
    kids = tree(spans).get(parent.span_id, [])
    return sorted((k for k in kids if name is None or k.name == name), key=lambda s: s.start_ns)


def test_a_run_with_a_managed_tool_calling_agent_is_one_trace_of_nested_spans(traced):
    """A CodeAgent whose code calls a tool and a managed ToolCallingAgent, each action approved by a person."""
    person = Person()
    with OpenAIServer() as srv:
        helper = ToolCallingAgent(tools=[add], model=model(srv), name="helper", description="Adds numbers")
        manager = CodeAgent(tools=[add], model=model(srv), name="manager", managed_agents=[helper],
                            approver=ModeApprover("every", person))
        srv.push_reply(py('x = add(a=1, b=2)\ny = helper(task="add 3 and 4")\nprint(x, y)'),
                       prompt_tokens=100, completion_tokens=20)
        srv.push_tool_calls(("add", {"a": 3, "b": 4}), usage=(50, 5))
        srv.push_tool_calls(("final_answer", {"answer": 7}), usage=(60, 6))
        srv.push_reply(py("final_answer(x + 7)"), prompt_tokens=130, completion_tokens=10)
        assert manager.run("Add 1 and 2, then ask the helper to add 3 and 4.") == 10
    assert len(person.asked) == 4  # the manager's two actions and the helper's two calls

    spans = traced.wait_for(lambda got: any(s.name == "invoke_agent manager" for s in got))
    assert len({s.trace_id for s in spans}) == 1, "one run, one trace"
    run = one(spans, "invoke_agent manager")
    assert run.parent_id == ""
    assert run["gen_ai.operation.name"] == "invoke_agent" and run["openinference.span.kind"] == "AGENT"
    assert run["gen_ai.agent.name"] == "manager" and run["gen_ai.request.model"] == "test-model"
    assert run["smol_magic.run_state"] == "done" and run["output.value"] == "10"
    assert run["gen_ai.usage.input_tokens"] == 100 + 50 + 60 + 130  # the managed run's tokens count too
    assert run["gen_ai.usage.output_tokens"] == 20 + 5 + 6 + 10

    steps = children(spans, run)
    assert [s.name for s in steps] == ["step 1", "step 2"]
    for number, step in enumerate(steps, 1):
        assert step["openinference.span.kind"] == "CHAIN" and step["smol_magic.step_number"] == number
        assert step["smol_magic.verdict"] == "allow" and step["smol_magic.approval"] == "run"
    first = steps[0]
    chat = one(children(spans, first), "chat test-model")
    assert chat["gen_ai.operation.name"] == "chat" and chat["openinference.span.kind"] == "LLM"
    assert chat["gen_ai.request.model"] == "test-model"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (100, 20)
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.completion"], chat["llm.token_count.total"]) \
        == (100, 20, 120)
    assert "helper(task=" in chat["output.value"]
    approval = one(children(spans, first), "approval")
    assert approval["smol_magic.approval"] == "run" and "add(a=1, b=2)" in approval["input.value"]

    # The CodeAgent's code called the tool and the managed agent: each a tool span in the step.
    add_call = one(children(spans, first), "execute_tool add")
    assert add_call["gen_ai.operation.name"] == "execute_tool" and add_call["openinference.span.kind"] == "TOOL"
    assert add_call["gen_ai.tool.name"] == add_call["tool.name"] == "add"
    assert add_call["output.value"] == "3" and add_call["input.value"] == "{'a': 1, 'b': 2}"
    call = one(children(spans, first), "execute_tool helper")
    assert "Here is the final answer" in call["output.value"]

    # The managed run nests under that call, with its own steps, model calls and tool calls.
    nested = one(children(spans, call), "invoke_agent helper")
    assert nested["gen_ai.agent.name"] == "helper" and nested["smol_magic.run_state"] == "done"
    helper_steps = children(spans, nested)
    assert [s.name for s in helper_steps] == ["step 1", "step 2"]
    tool_step = helper_steps[0]
    assert [s.name for s in children(spans, tool_step)] == ["chat test-model", "approval", "execute_tool add"]
    native = one(children(spans, tool_step), "execute_tool add")
    assert native["gen_ai.tool.call.id"].startswith("call_")  # the id the model gave the call
    assert native["output.value"] == "7"
    assert children(spans, native) == [], "the tool's own __call__ is the same call, not a second span"
    assert one(children(spans, tool_step), "chat test-model")["smol_magic.tool_calls"] == "add"
    assert all(s.status != 2 for s in spans), [(s.name, s.status_message) for s in spans if s.status == 2]


def test_errors_mark_their_spans_and_a_failed_run(traced):
    agent = CodeAgent(tools=[explode], model=ScriptedModel([py('explode(why="boom")')]), max_steps=3)
    with pytest.raises(Exception, match="ran out of replies"):
        agent.run("fail")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    run = one(spans, "invoke_agent CodeAgent")
    assert run.status == 2 and "ran out of replies" in run.status_message
    assert run["smol_magic.run_state"] == "failed"
    step1, step2 = children(spans, run)
    tool_span = one(children(spans, step1), "execute_tool explode")
    assert tool_span.status == 2 and "ValueError: boom" in tool_span.status_message
    assert step1.status == 2 and "boom" in step1.status_message  # the action's error
    chat = one(children(spans, step2), "chat scripted")  # the call that found no reply
    assert chat.status == 2 and "ran out of replies" in chat.status_message
    assert step2.status == 2, "a step the run ended in is ended too, as an error"


def test_no_secret_reaches_a_span(traced):
    @tool
    def echo(text: str) -> str:
        """Returns its text.

        Args:
            text: any text
        """
        return text

    agent = CodeAgent(tools=[echo], model=ScriptedModel([py("print(echo(text=api_key))"),
                                                         py("final_answer(api_key[:3])")]))
    agent.executor.namespace["api_key"] = SECRET
    agent.run(f"Use the key {SECRET} to call the service.")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    texts = [str(v) for s in spans for v in s.attributes.values()] + [s.status_message for s in spans]
    windows = {SECRET[i:i + redact.WINDOW] for i in range(len(SECRET) - redact.WINDOW + 1)}
    leaks = [t for t in texts if any(w in t for w in windows)]
    assert not leaks, leaks
    run = one(spans, "invoke_agent CodeAgent")
    assert redact.MARK in run["input.value"]
    step = children(spans, run)[0]
    assert redact.MARK in step["output.value"]  # what the code printed
    call = one(spans, "execute_tool echo")  # the tool's argument and its result
    assert redact.MARK in call["input.value"] and call["output.value"] == redact.MARK


def test_long_texts_are_cut_on_spans(traced):
    agent = CodeAgent(model=ScriptedModel([py("print('x' * 100_000)\nfinal_answer(1)")]))
    agent.run("print a lot")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    step = one(spans, "step 1")
    assert len(step["output.value"]) <= telemetry.VALUE_CHARS + 100
    assert "characters cut" in step["output.value"]


def test_an_interrupted_run_ends_its_spans_as_interrupted(traced):
    @tool
    def press_interrupt() -> str:
        """Presses Interrupt (SIGINT, as the kernel's Interrupt sends it)."""
        signal.raise_signal(signal.SIGINT)
        return "not reached"

    agent = CodeAgent(tools=[press_interrupt], model=ScriptedModel([py("press_interrupt()")]))
    with pytest.raises(KeyboardInterrupt):
        agent.run("wait")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    run = one(spans, "invoke_agent CodeAgent")
    assert run["smol_magic.run_state"] == "interrupted" and run.status == 2
    step = one(spans, "step 1")
    assert step.parent_id == run.span_id and step.end_ns > 0
    assert one(spans, "execute_tool press_interrupt").status == 2


def test_a_stopped_run_is_not_an_error(traced):
    class Stopper:
        async def approve(self, step: ActionStep) -> Decision:
            return Decision("stop", by_person=True)

    agent = CodeAgent(model=ScriptedModel([py("x = 1")]), approver=ModeApprover("every", Stopper()))
    agent.run("stop me")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    run = one(spans, "invoke_agent CodeAgent")
    assert run["smol_magic.run_state"] == "stopped" and run.status != 2
    step = one(spans, "step 1")
    assert step["smol_magic.approval"] == "stop"
    assert one(children(spans, step), "approval")["smol_magic.approval"] == "stop"


@pytest.mark.parametrize("collector", ["refused", "silent"])
def test_a_dead_collector_costs_a_run_at_most_the_flush_bound(collector, monkeypatch):
    """Nothing listens (connection refused), or a collector accepts and never answers."""
    for name in telemetry.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with Blackhole() as hole:
        endpoint = hole.endpoint
        if collector == "refused":
            hole.sock.close()  # the port is free again: nothing listens there
        assert telemetry.instrument(endpoint=endpoint)
        try:
            agent = CodeAgent(model=ScriptedModel([py("final_answer(42)")] * 3))
            started = time.monotonic()
            for _ in range(3):
                assert agent.run("answer") == 42
            elapsed = time.monotonic() - started
        finally:
            telemetry.reset()
    # The first run's end waits for its spans at most FLUSH_SECONDS, the next ones hardly: the exporter's own
    # timeout and retries (EXPORT_SECONDS) are not waited for.
    assert elapsed < telemetry.FLUSH_SECONDS + 3 * telemetry.SLOW_FLUSH_SECONDS + 2, elapsed


def test_a_tracer_provider_of_ones_own_is_used_as_it_is(receiver, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "my-notebook"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")))
    assert telemetry.instrument(tracer_provider=provider)
    try:
        CodeAgent(model=ScriptedModel([py("final_answer(1)")])).run("one")
    finally:
        telemetry.reset()
    spans = receiver.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    assert {s.service for s in spans} == {"my-notebook"}
    provider.shutdown()


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (this one has imported the SDK already)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**base, **env},
                          capture_output=True, text=True, timeout=120, cwd=TESTS)


RUN = """
from smol_magic import CodeAgent, ScriptedModel
agent = CodeAgent(model=ScriptedModel(["```python\\nfinal_answer(6 * 7)\\n```"] * 2))
print("answer", agent.run("answer"), agent.run("again"))
"""


def test_with_tracing_off_nothing_imports_opentelemetry():
    result = run_python(RUN + "import sys\nprint('loaded', 'opentelemetry' in sys.modules)\n", {})
    assert result.returncode == 0, result.stderr
    assert "answer 42 42" in result.stdout and "loaded False" in result.stdout


def test_without_the_sdk_tracing_on_says_how_to_install_it_once_and_the_run_goes_on(receiver):
    hide = textwrap.dedent("""
    import sys
    class NoOpenTelemetry:  # as if the otel extra were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoOpenTelemetry())
    """)
    result = run_python(hide + RUN, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert result.returncode == 0, result.stderr
    assert "answer 42 42" in result.stdout
    assert result.stderr.count('pip install "smol-magic[otel]"') == 1, result.stderr
    assert "the run goes on without traces" in result.stderr.lower()
    assert receiver.requests == 0

    explicit = run_python(hide + "import smol_magic\nprint('on', smol_magic.instrument())\n" + RUN, {})
    assert explicit.returncode == 0, explicit.stderr
    assert "on False" in explicit.stdout and 'pip install "smol-magic[otel]"' in explicit.stderr


def test_the_endpoint_variable_alone_turns_tracing_on(receiver):
    result = run_python(RUN, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "nb"})
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for(lambda got: sum(s.name.startswith("invoke_agent") for s in got) == 2, timeout=5)
    assert {s.service for s in spans} == {"nb"}
    assert len({s.trace_id for s in spans}) == 2, "each run its own trace"


def test_a_provider_set_globally_is_kept_and_the_run_nests_in_the_users_span(receiver):
    code = f"""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    provider = TracerProvider(resource=Resource.create({{"service.name": "users-own"}}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint="{receiver.endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    import smol_magic
    smol_magic.instrument()
    with trace.get_tracer("notebook").start_as_current_span("analysis"):
    """ + textwrap.indent(textwrap.dedent(RUN), "    " * 2)
    result = run_python(code, {})
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for(lambda got: any(s.name == "analysis" for s in got), timeout=10)
    analysis = one(spans, "analysis")
    runs = [s for s in spans if s.name == "invoke_agent CodeAgent"]
    assert len(runs) == 2 and all(r.parent_id == analysis.span_id for r in runs)
    assert {s.service for s in spans} == {"users-own"}


def test_the_cost_of_a_call_is_on_its_span_when_known(traced):
    priced = TokenUsage(1000, 50)
    priced.cost = 0.0125  # what the cost map gives (core/models.py sets it when the model is priced)
    agent = CodeAgent(model=ScriptedModel([ModelResponse(py("final_answer(1)"), priced)]))
    agent.run("one")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    chat = one(spans, "chat scripted")
    assert chat["smol_magic.cost_usd"] == pytest.approx(0.0125)
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (1000, 50)
    assert one(spans, "step 1")["smol_magic.cost_usd"] == pytest.approx(0.0125)


def test_a_cost_worked_out_after_the_reply_still_reaches_the_model_calls_span(traced):
    class PricesAfterTheReply(Renderer):  # sees each action before the trace does
        def action_ready(self, step: ActionStep) -> None:
            step.token_usage.cost = 0.002 * step.step_number

    agent = CodeAgent(model=ScriptedModel([py("x = 1"), py("final_answer(x)")]), renderer=PricesAfterTheReply())
    agent.run("two steps")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    costs = [s.get("smol_magic.cost_usd") for s in sorted(spans, key=lambda s: s.start_ns) if s.name == "chat scripted"]
    assert costs == [pytest.approx(0.002), pytest.approx(0.004)]
    for chat in (s for s in spans if s.name == "chat scripted"):
        step = next(s for s in spans if s.span_id == chat.parent_id)
        assert chat.end_ns <= step.end_ns, "the call's span ends when its reply came, inside its step"


def test_an_unpriced_call_has_tokens_and_no_cost(traced):
    CodeAgent(model=ScriptedModel([py("final_answer(1)")])).run("one")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    chat = one(spans, "chat scripted")
    assert chat["gen_ai.usage.input_tokens"] > 0 and "smol_magic.cost_usd" not in chat.attributes


def test_prices_from_the_cost_map_reach_the_calls_steps_and_run(traced):
    priced = "openai/gpt-4o-mini"
    model = ScriptedModel([ModelResponse(py("x = 1"), TokenUsage(1000, 100)),
                           ModelResponse(py("final_answer(x)"), TokenUsage(2000, 50))], model_id=priced)
    CodeAgent(model=model).run("two steps")
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    first, second = costs.cost(priced, 1000, 100), costs.cost(priced, 2000, 50)
    assert first and second, "litellm's cost map prices this model"
    chats = sorted((s for s in spans if s.name == f"chat {priced}"), key=lambda s: s.start_ns)
    assert [c["smol_magic.cost_usd"] for c in chats] == [pytest.approx(first), pytest.approx(second)]
    assert one(spans, "step 1")["smol_magic.cost_usd"] == pytest.approx(first)
    assert one(spans, "invoke_agent CodeAgent")["smol_magic.cost_usd"] == pytest.approx(first + second)


def test_a_run_the_budget_stopped_says_so_and_is_not_an_error(traced):
    model = ScriptedModel([ModelResponse(py("x = 1"), TokenUsage(100_000, 100))] * 3, model_id="openai/gpt-4o-mini")
    result = CodeAgent(model=model, budget=0.02).run("spend", return_full_result=True)
    assert result.state == "budget"
    spans = traced.wait_for(lambda got: any(s.name.startswith("invoke_agent") for s in got))
    run = one(spans, "invoke_agent CodeAgent")
    assert run["smol_magic.run_state"] == "budget" and run.status != 2
    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(calls) == len(model.requests) >= 1, "no span for the call the budget did not make"
    assert all(s.status != 2 for s in spans), [(s.name, s.status_message) for s in spans if s.status == 2]
