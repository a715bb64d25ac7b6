"""OpenTelemetry traces from a real kernel: a %%agent cell's spans are at the collector when the cell ends.

The kernel is started with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP receiver
on 127.0.0.1 (tests/otlp_receiver.py), as a user would point it at Phoenix or Jaeger.
"""

from __future__ import annotations

import pytest
from jupyter_client.manager import start_new_kernel
from kernel_helpers import LiveCell, evaluate, kernel_env, ok, py, run, scripted, stop_kernel
from otlp_receiver import OTLPReceiver, tree

TOOL = '''
from smol_magic import tool

@tool
def double(n: int) -> int:
    """Doubles a number.

    Args:
        n: the number
    """
    return 2 * n
'''


@pytest.fixture
def receiver():
    with OTLPReceiver() as rec:
        yield rec


@pytest.fixture
def traced_kernel(receiver):
    env = {**kernel_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "notebook"}
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, env=env)
    try:
        ok(kc, "%load_ext smol_magic")
        yield km, kc
    finally:
        stop_kernel(km, kc)


def runs(receiver: OTLPReceiver) -> list:
    return [s for s in receiver.spans if s.name.startswith("invoke_agent")]


def test_a_cells_spans_are_at_the_collector_when_the_cell_ends(traced_kernel, receiver):
    _, kc = traced_kernel
    ok(kc, TOOL)
    ok(kc, scripted("m", py("x = double(n=21)\nprint(x)"), py("final_answer(x)")))
    result = run(kc, "%%agent -m m --approve never\nDouble 21.", timeout=60)
    assert result.status == "ok", result.text
    # No waiting: the run's end sent its spans before the cell ended.
    spans = list(receiver.spans)
    (root,) = [s for s in spans if s.name.startswith("invoke_agent")]
    assert root.parent_id == "" and root.service == "notebook"
    assert root["smol_magic.run_state"] == "done" and root["output.value"] == "42"
    assert root["gen_ai.request.model"] == "scripted" and root["gen_ai.usage.input_tokens"] > 0
    kids = tree(spans)
    steps = sorted(kids[root.span_id], key=lambda s: s.start_ns)
    assert [s.name for s in steps] == ["step 1", "step 2"]
    assert steps[0]["smol_magic.approval"] == "auto" and steps[0]["smol_magic.verdict"] == "allow"
    assert "42" in steps[0]["output.value"]
    first = {s.name: s for s in kids[steps[0].span_id]}
    assert set(first) == {"chat scripted", "execute_tool double"}
    assert first["chat scripted"]["gen_ai.usage.output_tokens"] > 0
    assert first["execute_tool double"]["output.value"] == "42"

    # %config AgentMagics.otel = False turns it off even with the variable set; True turns it on again.
    ok(kc, "%config AgentMagics.otel = False")
    ok(kc, scripted("m", py("final_answer(1)")))
    assert run(kc, "%%agent -m m --reset\nOne.", timeout=60).status == "ok"
    ok(kc, "%config AgentMagics.otel = True")
    ok(kc, scripted("m", py("final_answer(2)")))
    assert run(kc, "%%agent -m m --reset\nTwo.", timeout=60).status == "ok"
    outputs = [s["output.value"] for s in runs(receiver)]
    assert outputs == ["42", "2"], "the run with otel off sent nothing"


def test_a_wait_for_a_click_is_a_span_of_the_step(traced_kernel, receiver):
    _, kc = traced_kernel
    ok(kc, scripted("m", py("y = 5"), py("final_answer(y)")))
    live = LiveCell(kc, "%%agent -m m --approve every\nSet y.")
    live.click(live.wait_for_card())
    live.click(live.wait_for_card())
    assert live.finish(timeout=60).status == "ok"
    spans = list(receiver.spans)
    kids = tree(spans)
    (root,) = [s for s in spans if s.name.startswith("invoke_agent")]
    steps = sorted(kids[root.span_id], key=lambda s: s.start_ns)
    for step in steps:
        assert step["smol_magic.approval"] == "run"
        (wait,) = [s for s in kids[step.span_id] if s.name == "approval"]
        assert wait["smol_magic.approval"] == "run" and wait["smol_magic.verdict"] == "allow"
    assert "y = 5" in [s for s in kids[steps[0].span_id] if s.name == "approval"][0]["input.value"]


def test_otel_on_without_the_sdk_says_how_to_install_it_and_runs_go_on():
    env = {k: v for k, v in kernel_env().items() if not k.startswith("OTEL_")}
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, env=env)
    try:
        ok(kc, HIDE_SDK)
        ok(kc, "%load_ext smol_magic")
        said = ok(kc, "%config AgentMagics.otel = True")
        assert 'pip install "smol-magic[otel]"' in said.stderr, said.text
        ok(kc, scripted("m", py("final_answer(6 * 7)")))
        result = run(kc, "%%agent -m m -o answer\nAnswer.", timeout=60)
        assert result.status == "ok", result.text
        assert 'smol-magic[otel]' not in result.stderr, "said once"
        assert evaluate(kc, "answer") == 42
        assert evaluate(kc, "'opentelemetry' in sys.modules") is False
    finally:
        stop_kernel(km, kc)


HIDE_SDK = '''
import sys
class NoOpenTelemetry:  # as if the otel extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoOpenTelemetry())
'''
