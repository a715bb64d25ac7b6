"""Managed agents in a real kernel: ``%%agent --with calc``, the nested live trace, approval, memory, export.

The test plays JupyterLab: each ``%%agent`` cell carries a cell id; the trace is read from the cell's
widget comm messages while it runs, and from the static trace that replaces it. The managed agent is a
CodeAgent made in the notebook (its own model and namespace); the manager calls it from its code.
The manager's own model, the agents' models and the answers are scripted; everything else is real.
"""

from __future__ import annotations

import nbclient
import nbformat
import pytest

from kernel_helpers import (
    LiveCell, collect, evaluate, html_text, interrupt, ok, py, run, scripted, send, started_marker, wait_for_file,
)

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc


def make_calc(kc, *replies: str, name: str = "calc") -> None:
    ok(kc, scripted(f"{name}_model", *replies) + "\nfrom smol_magic import CodeAgent\n"
       f"{name} = CodeAgent(model={name}_model, name={name!r}, description='Does arithmetic on request')")


def nested_titles(live: LiveCell) -> list[str]:
    """The titles of the managed-run boxes the cell's widgets show (Accordions titled 'managed agent ...')."""
    return [title for _, state in live.watch.models("AccordionModel") for title in state.get("titles") or ()
            if title.startswith("managed agent")]


def test_a_managed_run_is_nested_live_in_the_calling_step_and_kept_in_memory(kc, tmp_path):
    gate = tmp_path / "open"
    ok(kc, "import pathlib, time\n"
           f"def gate():\n    while not pathlib.Path({str(gate)!r}).exists():\n        time.sleep(0.01)\n    return 'open'")
    make_calc(kc, py("print('gate is', gate())\nx = 6 * 7", "Wait for the gate, then multiply."),
              py("final_answer(x)"))
    ok(kc, scripted("boss", py('r = calc(task="what is 6 times 7?", additional_args={"gate": gate})\nprint(r)',
                               "Ask calc."), py("final_answer(r)")))

    live = LiveCell(kc, "%%agent -m boss --with calc --reset\nWhat is 6 times 7? Ask calc.")
    # While the managed agent works, its run is shown inside the manager's step, live.
    live.wait_until(lambda: any("running" in t for t in nested_titles(live)), timeout=30,
                    what="the managed run's box, running")
    assert any(t.startswith("managed agent calc · what is 6 times 7?") for t in nested_titles(live))
    assert "print('gate is', gate())" in live.watch.widget_text()
    gate.touch()
    result = live.finish(60)
    assert result.status == "ok", (result.ename, result.evalue, result.text)
    assert any("done · 2 steps" in t for t in nested_titles(live))

    # The static trace keeps the managed run inside the step that called it; its text is indented.
    static = html_text(result.trace_html)
    calling = static.index('r = calc(task="what is 6 times 7?"')
    nested = static.index("managed agent calc · what is 6 times 7? · done · 2 steps", calling)
    assert calling < nested < static.index("print('gate is', gate())", nested) < static.index("final_answer(r)")
    assert 'class="smol-magic-managed"' in result.trace_html
    assert "  ┆ gate is open" in result.trace
    assert "Here is the final answer from your managed agent 'calc':\n42" in evaluate(kc, "r")

    # Memory: the managed run under the calling step, with its own steps; the notebook's names are back.
    memory = evaluate(kc, "[(m.agent_name, m.task, str(m.state), [s.code for s in m.action_steps]) for m in "
                          "get_ipython().magics_manager.registry['AgentMagics'].current.memory.action_steps[0]"
                          ".managed_runs]")
    assert memory == [("calc", "what is 6 times 7?", "done", ["print('gate is', gate())\nx = 6 * 7",
                                                                "final_answer(x)"])]
    assert evaluate(kc, "type(calc).__name__") == "CodeAgent"
    assert evaluate(kc, "get_ipython().magics_manager.registry['AgentMagics'].current.managed_agents") == {}

    # The export re-executes in a fresh kernel, with the outputs the run had.
    path = tmp_path / "run.ipynb"
    ok(kc, f"%agent export {path} --with-setup")  # the manager read the notebook's gate
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    def shown(notebook) -> list[str]:  # what each code cell shows (a long print may arrive in several chunks)
        return ["".join(o.get("text") or o.get("data", {}).get("text/plain", "") for o in c.outputs)
                for c in notebook.cells if c.cell_type == "code"]

    recorded = shown(nb)
    sources = "\n".join(c.source for c in nb.cells)
    assert "print('gate is', gate())" in sources  # the managed agent's steps, under the calling step
    assert sources.index("called the managed agent `calc`") < sources.index('r = calc(task=')
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    again = shown(nb)
    assert again == recorded, "\n".join(f"{a!r}\n{b!r}" for a, b in zip(again, recorded) if a != b)
    assert any("final answer from your managed agent 'calc':\n42" in text for text in shown(nb))


def test_a_manager_with_a_code_agent_and_a_tool_calling_agent(kc, tmp_path):
    """Both kinds of agent under one manager: each nested in the trace and in memory; the export re-executes."""
    make_calc(kc, py("x = 6 * 7"), py("final_answer(x)"))
    ok(kc, scripted("adder_model", 'Action: {"name": "add", "arguments": {"a": 40, "b": 2}}',
                    'Action: {"name": "final_answer", "arguments": {"answer": 42}}')
       + "\nfrom smol_magic import ToolCallingAgent, tool\n"
         "@tool\ndef add(a: int, b: int) -> int:\n"
         "    \"\"\"Adds two numbers.\n\n    Args:\n        a: the first\n        b: the second\n    \"\"\"\n"
         "    return a + b\n"
         "adder = ToolCallingAgent(tools=[add], model=adder_model, name='adder', description='Adds with its tool')")
    ok(kc, scripted("boss5", py('a = calc(task="6 times 7")\nb = adder(task="40 plus 2")\n'
                                'print(a.splitlines()[1], b.splitlines()[1])', "Ask both."),
                    py("final_answer(a.splitlines()[1] == b.splitlines()[1])")))
    live = LiveCell(kc, "%%agent -m boss5 --with calc,adder --reset\nAsk calc and adder; do they agree?")
    result = live.finish(60)
    assert result.status == "ok", (result.ename, result.evalue, result.text)
    titles = nested_titles(live)
    assert any(t.startswith("managed agent calc · 6 times 7") and "done · 2 steps" in t for t in titles), titles
    assert any(t.startswith("managed agent adder · 40 plus 2") and "done · 2 steps" in t for t in titles), titles
    static = html_text(result.trace_html)
    assert static.index("managed agent calc") < static.index("managed agent adder") < static.index("add(a=40, b=2)")
    assert evaluate(kc, "b").startswith("Here is the final answer from your managed agent 'adder':\n42")

    runs = evaluate(kc, "[(m.agent_name, [[c.name for c in s.tool_calls] for s in m.action_steps]) for m in "
                        "get_ipython().magics_manager.registry['AgentMagics'].current.memory.action_steps[0]"
                        ".managed_runs]")
    assert runs == [("calc", [[], []]), ("adder", [["add"], ["final_answer"]])]

    path = tmp_path / "both.ipynb"
    ok(kc, f"%agent export {path}")
    nb = nbformat.read(path, as_version=4)
    sources = "\n".join(c.source for c in nb.cells)
    assert "called the managed agent `adder`" in sources and "add(a=40, b=2)" in sources
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"]
    assert "42 42\n" in printed


def test_approval_cards_appear_and_are_clicked_inside_a_managed_run(kc):
    make_calc(kc, py("y = 2 + 2"), py("final_answer(y)"))
    ok(kc, scripted("boss2", py('r = calc(task="two plus two")\nprint(r)'), py("final_answer(r)")))
    live = LiveCell(kc, "%%agent -m boss2 --with calc --reset --approve every\nAsk calc for two plus two.")
    live.click(live.wait_for_card("Run"))  # the manager's call, approved alone
    # calc's own actions wait for a click too, in cards inside the managed run's box, while the
    # manager's code holds the kernel.
    live.wait_until(lambda: any("waiting for you" in t for t in nested_titles(live)), what="calc's first card")
    first = live.wait_for_card("Run")
    later = send(kc, "print('the next cell ran after, with', r[:25])")  # queued by the user meanwhile
    live.click(first)
    live.click(live.wait_for_card("Skip"))  # calc's final answer, skipped
    live.wait_until(lambda: any("could not finish" in t or "failed" in t for t in nested_titles(live)),
                    what="calc's run to end")
    live.click(live.wait_for_card("Run"))  # the manager's final answer
    assert live.finish(60).status == "ok"
    assert collect(kc, later).text == "the next cell ran after, with Your managed agent 'calc'\n"
    approvals = evaluate(kc, "[str(s.approval) for s in get_ipython().magics_manager.registry['AgentMagics']"
                             ".current.memory.action_steps[0].managed_runs[0].action_steps]")
    assert approvals == ["run", "skip"]
    assert evaluate(kc, "calc.executor.namespace['y']") == 4
    assert "could not finish (failed)" in evaluate(kc, "r")  # skipped, then out of replies: told as text

    # "Run all" on the manager's step approves its managed agent's actions too.
    make_calc(kc, py("y = 2 + 2"), py("final_answer(y)"))
    ok(kc, scripted("boss3", py('r = calc(task="two plus two")\nprint(r)'), py("final_answer(r)")))
    live = LiveCell(kc, "%%agent -m boss3 --with calc --reset --approve every\nAsk calc for two plus two.")
    live.click(live.wait_for_card("Run all"))
    assert live.finish(60).status == "ok"
    assert evaluate(kc, "[str(s.approval) for s in get_ipython().magics_manager.registry['AgentMagics'].current"
                        ".memory.action_steps[0].managed_runs[0].action_steps]") == ["run", "run"]
    assert "final answer from your managed agent 'calc':\n4" in evaluate(kc, "r")


@pytest.mark.parametrize("setup, line, message", [
    ("", "--with nobody", "--with: there is no variable 'nobody'"),
    ("number = 3", "--with number", "--with: 'number' is a int, not an agent"),
    ("from smol_magic import CodeAgent, ScriptedModel\nanon = CodeAgent(model=ScriptedModel([]))", "--with anon",
     "--with: a managed agent needs a name and a description"),
])
def test_with_names_that_are_not_agents_are_refused_clearly(kc, setup, line, message):
    ok(kc, setup or "pass")
    ok(kc, scripted("boss4", py("final_answer(1)")))
    result = run(kc, f"%%agent -m boss4 {line}\nanything")
    assert result.ename == "UsageError" and message in result.evalue, (result.ename, result.evalue)


def test_a_managed_agent_may_work_in_the_notebooks_own_namespace(kc):
    ok(kc, scripted("shared_model", py("product = 6 * 7\nprint('made product')"), py("final_answer(product)"))
       + "\nfrom smol_magic import CodeAgent, KernelExecutor\n"
       "helper = CodeAgent(model=shared_model, name='helper', description='Works in the notebook',"
       " executor=KernelExecutor(get_ipython()))")
    ok(kc, scripted("boss5", py('r = helper(task="make product")'), py("final_answer(r)")))
    live = LiveCell(kc, "%%agent -m boss5 --with helper --reset\nAsk helper.")
    result = live.finish(60)
    assert result.status == "ok", (result.ename, result.evalue, result.text)
    assert evaluate(kc, "product") == 42  # the managed agent's variable is the notebook's
    assert "  ┆ made product" in result.trace
    assert evaluate(kc, "type(helper).__name__") == "CodeAgent"


def test_interrupt_during_a_managed_run_stops_both_runs_and_leaves_the_kernel_usable(own_kernel, tmp_path):
    km, kc = own_kernel
    marker = started_marker(kc, tmp_path)
    ok(kc, scripted("slow_model", py("started()\nimport time\nwhile True:\n    time.sleep(0.01)"),
                    py("final_answer(1)"))
       + "\nfrom smol_magic import CodeAgent\n"
       "slow = CodeAgent(model=slow_model, name='slow', description='Takes forever')\n"
       "slow.executor.namespace['started'] = started")
    ok(kc, scripted("boss6", py('r = slow(task="wait")'), py("final_answer(r)")))
    live = LiveCell(kc, "%%agent -m boss6 --with slow --reset\nAsk slow.")
    wait_for_file(marker)
    interrupt(km, lambda: live.finish(30), within=3)
    states = evaluate(kc, "(str(slow.runs[-1].state), str(get_ipython().magics_manager.registry['AgentMagics']"
                          ".current.runs[-1].state))")
    assert states == ("interrupted", "interrupted")
    assert ok(kc, "print('still here', 1 + 1)").text == "still here 2\n"
    assert evaluate(kc, "[t.name for t in __import__('threading').enumerate() if t.name == 'smol-magic-agent']") == []


def test_interrupt_while_a_managed_agents_card_waits_stops_both_runs(own_kernel):
    km, kc = own_kernel
    make_calc(kc, py("y = 3"), py("final_answer(y)"))
    ok(kc, scripted("boss7", py('r = calc(task="three")'), py("final_answer(r)")))
    live = LiveCell(kc, "%%agent -m boss7 --with calc --approve every\nAsk calc.")
    live.click(live.wait_for_card("Run"))
    live.wait_for_card("Run")  # calc's card, waiting
    interrupt(km, lambda: live.finish(30), within=3)
    assert evaluate(kc, "(str(calc.runs[-1].state), str(get_ipython().magics_manager.registry['AgentMagics']"
                        ".current.runs[-1].state), 'y' in calc.executor.namespace)") == ("interrupted", "interrupted",
                                                                                          False)
    assert ok(kc, "print('still here', 2 + 2)").text == "still here 4\n"
