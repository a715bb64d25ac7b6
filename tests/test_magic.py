"""%%agent in an IPython shell: the user's namespace, history, flags and errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from smol_magic import CodeAgent, InferenceClientModel, LiteLLMModel, OpenAIServerModel, ScriptedModel, TransformersModel


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def test_agent_works_on_the_users_real_objects(ip):
    ip.user_ns["sales"] = sales = pd.DataFrame({"region": ["a", "b", "a"], "revenue": [1, 5, 3]})
    ip.user_ns["m"] = ScriptedModel([
        fence("growth = sales.groupby('region').revenue.sum()\nprint(growth)"),
        fence("final_answer(growth.idxmax())"),
    ])
    result = ip.run_cell("%%agent -m m -o best\nWhich region is best? Keep the table as `growth`.")
    assert result.success
    assert ip.user_ns["best"] == "b"
    assert isinstance(ip.user_ns["growth"], pd.Series)
    assert ip.user_ns["sales"] is sales
    # the actions are in In, and so in %history
    assert "growth = sales.groupby('region').revenue.sum()\nprint(growth)" in ip.user_ns["In"]
    assert "final_answer(growth.idxmax())" in ip.user_ns["In"]
    # the model was told about the DataFrame's schema
    first_task = ip.user_ns["m"].requests[0][-1]["content"]
    assert "sales: DataFrame 3 x 2 (region:" in first_task


def test_actions_fire_the_cell_hooks_other_extensions_rely_on(ip):
    seen = []
    hooks = {"pre_run_cell": lambda info: seen.append(("pre", info.raw_cell)),
             "post_run_cell": lambda result: seen.append(("post", result.info.raw_cell))}
    for event, hook in hooks.items():
        ip.events.register(event, hook)
    ip.user_ns["m"] = ScriptedModel([fence("x = 1"), fence("final_answer(x)")])
    try:
        ip.run_cell("%%agent -m m\ntask")
    finally:
        for event, hook in hooks.items():
            ip.events.unregister(event, hook)
    for code in ("x = 1", "final_answer(x)"):
        assert ("pre", code) in seen and ("post", code) in seen


def test_run_cell_magic_works_too(ip):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(6 * 7)")])
    ip.run_cell_magic("agent", "-m m -o answer", "What is six times seven?")
    assert ip.user_ns["answer"] == 42


def test_the_trace_is_shown_as_it_happens(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("print('hello from the agent')"), fence("final_answer(1)")])
    ip.run_cell("%%agent -m m\nsay hello")
    out = capsys.readouterr().out
    assert "step 1" in out and "print('hello from the agent')" in out
    assert "hello from the agent" in out
    assert "done · 2 steps" in out


def test_next_cell_continues_the_conversation_unless_reset(ip):
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)"), fence("final_answer(3)")])
    ip.run_cell("%%agent -m m\nfirst question")
    ip.run_cell("%%agent -m m\nsecond question")
    assert "first question" in " ".join(msg["content"] for msg in m.requests[1])
    ip.run_cell("%%agent -m m --reset\nthird question")
    assert "first question" not in " ".join(msg["content"] for msg in m.requests[2])


def test_model_from_config_and_environment(ip, monkeypatch):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer('cfg')")])
    ip.run_line_magic("config", 'AgentMagics.model = "m"')
    ip.run_cell("%%agent -o out\ntask")
    assert ip.user_ns["out"] == "cfg"
    monkeypatch.setenv("SMOL_MAGIC_MODEL", "openai/gpt-4o-mini")
    ip.config.pop("AgentMagics")
    from smol_magic.jupyter.magic import AgentMagics

    assert AgentMagics(shell=ip).model == "openai/gpt-4o-mini"


def test_model_specs(ip):
    magics = ip.magics_manager.registry["AgentMagics"]
    litellm_model = magics._resolve_model("openai/gpt-4o-mini")
    assert isinstance(litellm_model, LiteLLMModel) and litellm_model.model_id == "openai/gpt-4o-mini"
    hf_model = magics._resolve_model("hf:Qwen/Qwen2.5-Coder-32B-Instruct")
    assert isinstance(hf_model, InferenceClientModel) and hf_model.model_id == "Qwen/Qwen2.5-Coder-32B-Instruct"
    # ids may hold '@' and ':' (ollama tags): the URL is what follows the last '@http(s)://'
    server_model = magics._resolve_model("openai-server:org/llama3@v2:q4@http://localhost:8000/v1")
    assert isinstance(server_model, OpenAIServerModel)
    assert (server_model.model_id, server_model.api_base) == ("org/llama3@v2:q4", "http://localhost:8000/v1")
    local = magics._resolve_model("transformers:./models/tiny")  # loaded on first use, not here
    assert isinstance(local, TransformersModel) and local.model_id == "./models/tiny"
    assert isinstance(magics._resolve_model("ollama/llama3.1:8b"), LiteLLMModel)


@pytest.mark.parametrize(
    "cell, message",
    [
        ("%%agent\ntask", "no model configured: use %%agent -m openai/gpt-4o-mini"),
        ("%%agent -m m --bogus\ntask", "unrecognized arguments: --bogus (see %%agent? for the flags)"),
        ("%%agent -m nosuch\ntask", "unknown model 'nosuch': there is no variable of that name"),
        ("%%agent -m openai-server:llama3\ntask",
         "-m/--model 'openai-server:llama3': write openai-server:MODEL@URL, e.g. openai-server:llama3@http://"),
        ("%%agent -m openai-server:@http://h:1/v1\ntask", "write openai-server:MODEL@URL"),
        ("%%agent -m transformers:\ntask", "give a local model folder (or a downloaded Hub id) after transformers:"),
        ("%%agent -m hf:\ntask", "give the model after hf:, e.g. hf:"),
        ("%%agent -m data\ntask", "'data' is a list, not a Model"),
        ("%%agent -m m\n   \n", "write the task in the cell, below the %%agent line"),
        ("%%agent -m m -o 1x\ntask", "-o needs a variable name, got '1x'"),
        ("%%agent -m m --max-steps 0\ntask", "--max-steps must be at least 1"),
        ("%%agent -m m --timeout -1\ntask", "--timeout must be a positive number of seconds"),
        ("%%agent -m m --max-steps lots\ntask", "invalid int value: 'lots'"),
        ("%%agent -m m --approve sometimes\ntask", "invalid choice: 'sometimes' (choose from 'every', 'risky', 'never')"),
        ("%%agent -m m what now\ntask", "unexpected text on the %%agent line: 'what now'"),
        ("%agent frobnicate", "%agent: unknown subcommand 'frobnicate'; use one of reset, code, memory, status, "
                              "export, cells, undo"),
        # each subcommand has its own flags: export's are refused on a run, and the other way round
        ("%%agent -m m --with-setup --run 7\ntask", "unrecognized arguments: --with-setup --run 7"),
        ("%agent status --run 1", "%agent status: unrecognized arguments: --run 1"),
        ("%agent undo --with-setup", "%agent undo: unrecognized arguments: --with-setup"),
        ("%agent export --max-steps 3 out.ipynb", "%agent export: unrecognized arguments: --max-steps"),
    ],
)
def test_bad_input_is_one_clear_line_and_loses_nothing(ip, capsys, cell, message):
    ip.user_ns["data"] = data = [1, 2, 3]
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    assert not result.success
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert ip.user_ns["data"] is data and m.requests == []


@pytest.mark.parametrize("setting, message", [
    ("max_steps = 0", "AgentMagics.max_steps must be at least 1, not 0: %config AgentMagics.max_steps = 20"),
    ("timeout = 0", "AgentMagics.timeout must be a positive number of seconds, not 0"),
    ("max_observation_chars = 5", "AgentMagics.max_observation_chars must be at least 100, not 5"),
    ("allow = ['root']", "AgentMagics.allow: unknown capability 'root'; use some of"),
])
def test_bad_settings_are_refused_with_a_clear_message(ip, capsys, caplog, setting, message):
    magics = ip.magics_manager.registry["AgentMagics"]
    name = setting.split()[0]
    before = getattr(magics, name)
    ip.run_cell(f"%config AgentMagics.{setting}")  # %config logs the TraitError as an error line
    captured = capsys.readouterr()
    assert message in captured.err + captured.out + caplog.text
    assert getattr(magics, name) == before  # the bad value did not stick


def test_model_failure_mid_run_is_a_clear_error_and_keeps_work(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("made = 'kept'")])
    result = ip.run_cell("%%agent -m m\ntask")
    err = capsys.readouterr().err
    assert not result.success
    assert "the agent run failed: scripted: " not in err  # the message is the model's own, not wrapped twice
    assert "ScriptedModel ran out of replies" in err
    assert "Traceback" not in err
    assert ip.user_ns["made"] == "kept"


def test_refused_action_does_not_run(ip, tmp_path):
    marker = tmp_path / "marker"
    ip.user_ns["m"] = m = ScriptedModel([
        fence(f"import subprocess\nsubprocess.run(['touch', {str(marker)!r}])"),
        fence(f"get_ipython().system('touch {marker}')"),
        fence(f"!touch {marker}"),
        fence("final_answer('gave up')"),
    ])
    ip.run_cell("%%agent -m m -o out\ntouch a file")
    assert ip.user_ns["out"] == "gave up"
    assert not marker.exists()
    assert all("refused" in req[-1]["content"] for req in m.requests[1:])


def test_without_a_person_approval_modes_run_as_never_and_say_so(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")])
    ip.run_cell("%%agent -m m --approve never\ntask")
    assert "no one can be asked" not in capsys.readouterr().out
    ip.run_cell("%%agent -m m --approve every -o out\ntask")
    assert "no one can be asked for approval here (no terminal): running as --approve never" in capsys.readouterr().out
    assert ip.user_ns["out"] == 2


def test_timeout_flag_stops_a_runaway_action(ip):
    ip.user_ns["m"] = m = ScriptedModel([fence("while True:\n    pass"), fence("final_answer('next')")])
    ip.run_cell("%%agent -m m --timeout 0.5 -o out\nspin")
    assert ip.user_ns["out"] == "next"
    assert "0.5 s time limit" in m.requests[1][-1]["content"]


def test_imports_flag_authorizes_a_module(ip):
    ip.user_ns["m"] = m = ScriptedModel([fence("import uuid\nfinal_answer(len(str(uuid.uuid4())))"), "no uuid"] * 2)
    ip.run_cell("%%agent -m m --max-steps 1 -o out\nmake an id")
    assert "import of 'uuid' is not authorized" in m.requests[1][-1]["content"]  # with the last-step prompt
    ip.run_cell("%%agent -m m --imports uuid -o out --reset\nmake an id")
    assert ip.user_ns["out"] == 36


def test_subcommands(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("a = 1"), fence("final_answer(a)")])
    ip.run_cell("%%agent -m m\ntask")
    capsys.readouterr()
    ip.run_line_magic("agent", "code")
    assert capsys.readouterr().out.strip() == "a = 1\n\nfinal_answer(a)"
    ip.run_line_magic("agent", "memory")
    assert '"kind": "action"' in capsys.readouterr().out
    ip.run_line_magic("agent", "reset")
    ip.run_line_magic("agent", "status")
    assert "memory: 0 steps" in capsys.readouterr().out


def test_help_documents_flags_and_the_guard(ip):
    doc = ip.magics_manager.registry["AgentMagics"].agent.__doc__
    for flag in ("--model", "--max-steps", "--approve", "--out", "--reset", "--timeout", "--imports"):
        assert flag in doc
    assert "not a sandbox" in doc


@pytest.mark.parametrize("cell", ["%%agent --help\ntask", "%%agent -m m -h\ntask", "%agent --help", "%agent -h"])
def test_help_flag_shows_the_help_and_runs_nothing(ip, capsys, cell):
    """Who types --help, as for a shell command, gets what %%agent? shows, not an error."""
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    result = ip.run_cell(cell)
    out = capsys.readouterr().out
    assert result.success
    assert "Run a code-writing agent" in out and "--max-steps" in out and "%agent export" in out
    assert m.requests == []


def test_tools_do_not_linger_in_the_users_namespace(ip):
    ip.user_ns["final_answer"] = "my own variable"
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(5)")])
    ip.run_cell("%%agent -m m -o out\ntask")
    assert ip.user_ns["out"] == 5
    assert ip.user_ns["final_answer"] == "my own variable"


def test_loading_does_not_import_the_model_clients():
    """Loading stays light (its time is printed by bench/ui.py): litellm and huggingface_hub load on first use."""
    code = (
        "import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\nip.run_line_magic('load_ext', 'smol_magic')\n"
        "print('agent' in ip.magics_manager.magics['cell'], 'litellm' in sys.modules, 'huggingface_hub' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]


def test_where_clicks_cannot_reach_the_kernel_it_says_so_once_and_runs_as_never(ip, capsys):
    from smol_magic.jupyter.widgets import clicks_reach_kernel

    class OldKernel:  # ipykernel < 7.4: no concurrent dispatch of comm messages during a cell
        def dispatch_shell(self, msg):
            pass

    class NewKernel:
        def dispatch_shell(self, msg, subshell_id=None, *, concurrent=False):
            pass

    assert not clicks_reach_kernel(type("Shell", (), {"kernel": OldKernel()})())
    assert clicks_reach_kernel(type("Shell", (), {"kernel": NewKernel()})())
    assert not clicks_reach_kernel(ip)  # a terminal shell has no kernel at all
    ip.run_line_magic("config", 'AgentMagics.ui = "widgets"')
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")])
    ip.run_cell("%%agent -m m --approve every -o a\nt")
    ip.run_cell("%%agent -m m --approve every -o b\nt")
    out = capsys.readouterr().out
    assert out.count("cannot receive clicks while a cell runs") == 1
    assert ip.user_ns["a"] == 1 and ip.user_ns["b"] == 2


def test_unload_removes_the_magics_and_hooks_and_a_reload_adds_nothing_twice(ip, capsys):
    def hooks() -> tuple[int, ...]:
        return (len(ip.events.callbacks["post_run_cell"]), len(ip.events.callbacks["pre_run_cell"]),
                len(ip.input_transformers_cleanup))

    loaded = hooks()
    ip.run_line_magic("reload_ext", "smol_magic")
    assert hooks() == loaded
    ip.run_line_magic("unload_ext", "smol_magic")
    try:
        assert not ip.run_cell("%%agent -m m\ntask").success
        assert "Cell magic `%%agent` not found" in capsys.readouterr().err
        assert "agent" not in ip.magics_manager.magics["line"] and "executor" not in ip.magics_manager.magics["cell"]
        assert all(now < before for now, before in zip(hooks(), loaded))
    finally:
        ip.run_line_magic("load_ext", "smol_magic")
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(2)")])
    ip.run_cell("%%agent -m m -o out\ntask")
    assert ip.user_ns["out"] == 2 and hooks() == loaded


def test_a_run_an_agent_and_its_memory_show_as_one_line_wherever_a_cell_displays_them(ip):
    """``run_cell_magic`` returns nothing (a cell would print the whole run), and a RunResult's repr is one line
    (``agent.run(..., return_full_result=True)`` as a cell's last expression), not the conversation."""
    ip.user_ns["m"] = ScriptedModel([fence("final_answer([1, 2])")] * 2)
    result = ip.run_cell('get_ipython().run_cell_magic("agent", "-m m -o out", "task")')
    assert result.success and result.result is None and ip.user_ns["out"] == [1, 2]
    agent = CodeAgent(model=ScriptedModel([fence("x = 1"), fence("final_answer([1, 2])")]), name="lister")
    run = agent.run("list two", return_full_result=True)
    text = repr(run)
    assert text.startswith("RunResult(done, 2 steps, ") and text.endswith("task='list two', output=[1, 2])")
    assert "\n" not in text and "system" not in text
    assert repr(agent) == "CodeAgent('lister', model='scripted', tools=['final_answer'], runs=1)"
    assert repr(agent.memory).startswith("AgentMemory(4 steps, 2 actions, system prompt of ")
    assert repr(run.action_steps[0]).startswith("ActionStep(1, auto, code='x = 1', observation='")
    assert max(len(repr(x)) for x in (run, agent, agent.memory, *run.steps)) < 300
