"""``%%agent --executor isolated`` in a real notebook kernel, driven over ZMQ as JupyterLab drives it.

The agent's actions run in a child kernel started by the notebook's kernel. What
a user notices: their DataFrame goes in (--vars, or named as {var}) and results
come back (--out-vars, -o) as real objects; a child that runs out of memory,
calls os._exit or segfaults ends alone, with the real cause told to the model
and the user, while the notebook's kernel and variables stay as they were; the
next action runs in a fresh child; a timeout stops only the action; the child
sees no API keys; ``%agent executor`` shows, restarts and stops it; bad flags
are one-line errors that run nothing.

One notebook kernel (and its one child) is shared by the module: crashes of the
child are the point of these tests and do not harm the notebook's kernel.
"""

from __future__ import annotations

import os

import pytest
from kernel_helpers import collect, evaluate, interrupt, ok, py, run, scripted, send, wait_for_file, wait_for_output

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc, own_kernel


def observations(kc, model: str) -> list[str]:
    """What the model was told after each action (the last message of each later request)."""
    return [request[-1]["content"] for request in evaluate(kc, f"{model}.requests")[1:]]


@pytest.fixture(scope="module")
def notebook(kernel):
    """The notebook's own data and pid, checked after every crash of the child."""
    kc = kernel[1]
    ok(kc, "import os, pandas as pd\n"
           "sales = pd.DataFrame({'region': ['n', 's', 'e', 'w'], 'rev': [10, 30, 20, 5]})\n"
           "precious = [1, 2, 3]\nnotebook_pid = os.getpid()\nimport threading\nhandle = threading.Lock()")
    return kc


def assert_notebook_intact(kc) -> None:
    assert evaluate(kc, "precious") == [1, 2, 3]
    assert evaluate(kc, "sales.rev.tolist()") == [10, 30, 20, 5]
    assert evaluate(kc, "os.getpid() == notebook_pid") is True


# -- data in and out ---------------------------------------------------------------------------------


def test_a_dataframe_goes_in_and_results_come_back(notebook):
    kc = notebook
    ok(kc, scripted("m1", py("import os\nprint('child', os.getpid())\nbig = sales[sales.rev > 15]\n"
                             "total = int(sales.rev.sum())"),
                    py("final_answer(total)")))
    result = ok(kc, "%%agent -m m1 --executor isolated --vars sales --out-vars big -o answer --reset\n"
                    "Which regions sell over 15, and what is the total?")

    assert "sent to the isolated kernel: sales (DataFrame" in result.stdout
    assert "from the isolated kernel: big: DataFrame" in result.stdout and "new" in result.stdout
    assert evaluate(kc, "answer") == 65  # -o: the final answer, as an object
    assert evaluate(kc, "type(big).__name__") == "DataFrame"
    assert evaluate(kc, "big.region.tolist()") == ["s", "e"]  # --out-vars: a real DataFrame in the notebook
    assert evaluate(kc, "'total' in globals()") is False  # what was not asked for stays in the child
    first = observations(kc, "m1")[0]
    child_pid = int(first.split("child ")[1].split()[0])
    assert child_pid != evaluate(kc, "notebook_pid")  # the action ran in another process
    assert "created big: DataFrame" in first and "created total: int" in first
    task = evaluate(kc, "m1.requests[0][-1]['content']")
    assert "- sales: DataFrame" in task and "region" in task  # the model is told what the child holds
    assert_notebook_intact(kc)


def test_a_variable_named_in_the_task_is_sent_and_a_replaced_one_can_be_undone(notebook):
    kc = notebook
    ok(kc, "best = 'mine'")
    ok(kc, scripted("m2", py("best = sales.loc[sales.rev.idxmax(), 'region']"), py("final_answer(best)")))
    result = ok(kc, "%%agent -m m2 --executor isolated --out-vars best\nWhich region of {sales} sells most?")

    assert "sent to the isolated kernel: sales (DataFrame" in result.stdout
    assert "best: str = 's'" in result.stdout
    assert "replaced your earlier one (%agent undo puts it back)" in result.stdout
    assert evaluate(kc, "best") == "s"
    undone = ok(kc, "%agent undo")
    assert "restored: best" in undone.stdout
    assert evaluate(kc, "best") == "mine"  # the user's own value is back, nothing of the child's touched


# -- crashes end only the child ----------------------------------------------------------------------


def test_memory_past_the_limit_ends_only_the_child(notebook):
    kc = notebook
    ok(kc, scripted("m3", py("import os\nprint('before', os.getpid())\nkept = 1"),
                    py("hog = bytearray(3 * 2**30)"),
                    py("import os\ntry:\n    print('after', os.getpid(), kept)\nexcept NameError:\n"
                       "    print('after', os.getpid(), 'gone')"),
                    py("final_answer('done')")))
    ok(kc, "%%agent -m m3 --executor isolated --memory 1.5GB --reset\nAllocate too much")

    first, second, third = observations(kc, "m3")[:3]
    assert "MemoryError" in second
    assert "went past the isolated kernel's memory limit (1.5 GB); the kernel was restarted" in second
    before = int(first.split("before ")[1].split()[0])
    after_pid, kept = third.split("after ")[1].split()[:2]
    assert int(after_pid) != before and kept == "gone"  # the next action ran in a fresh child
    assert_notebook_intact(kc)


def test_os_exit_a_segfault_and_a_kill_end_only_the_child_with_their_cause(notebook):
    kc = notebook
    ok(kc, scripted("m4", py("import os\nos._exit(1)"),
                    py("import ctypes\nctypes.string_at(0)"),
                    py("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                    py("import os\nprint('alive', os.getpid())"),
                    py("final_answer('ok')")))
    result = ok(kc, "%%agent -m m4 --executor isolated --no-guard --reset -o status\nCrash thrice")

    exited, segfault, killed, alive = observations(kc, "m4")[:4]
    assert "The isolated kernel died: exited with code 1." in exited
    assert "The notebook's kernel and its variables are untouched" in exited
    assert "The isolated kernel died: it crashed with a segmentation fault (SIGSEGV)" in segfault
    assert "This action runs in a fresh isolated kernel: the variables made there before are gone" in segfault
    assert "The isolated kernel died: killed by SIGKILL: out of memory, most likely" in killed
    assert "alive" in alive
    assert "exited with code 1" in result.trace  # the user reads the cause in the trace too
    assert evaluate(kc, "status") == "ok"
    assert_notebook_intact(kc)


# -- limits ------------------------------------------------------------------------------------------


def test_a_timeout_stops_the_action_and_the_run_goes_on(notebook):
    kc = notebook
    ok(kc, scripted("m5", py("x = 5"), py("import time\ntime.sleep(60)"), py("final_answer(x * 2)")))
    result = ok(kc, "%%agent -m m5 --executor isolated --timeout 1 --reset -o doubled\nWait, then double", )

    stopped = observations(kc, "m5")[1]
    assert "ActionTimeout: the action ran past its 1 s time limit" in stopped
    assert evaluate(kc, "doubled") == 10  # the child kept x: the interrupt stopped only the action
    assert result.elapsed < 30


def test_the_child_cannot_see_the_notebooks_api_keys_unless_passed(notebook):
    kc = notebook
    ok(kc, "os.environ['OPENAI_API_KEY'] = 'sk-proj-test-abcdefghijklmnop'\n%agent executor stop")
    probe = py("import subprocess\nenv = subprocess.run(['env'], capture_output=True, text=True).stdout\n"
               "print('has key:', 'OPENAI_API_KEY' in env)")
    ok(kc, scripted("m6", probe, py("final_answer(1)")))
    ok(kc, "%%agent -m m6 --executor isolated --reset\nLook at the environment")
    assert "has key: False" in observations(kc, "m6")[0]

    ok(kc, "%config AgentMagics.isolated_env = ['OPENAI_API_KEY']")
    ok(kc, scripted("m7", probe, py("final_answer(1)")))
    restarted = ok(kc, "%%agent -m m7 --executor isolated --reset\nLook again")
    assert "the isolated kernel restarts with the new settings (environment)" in restarted.stdout
    assert "has key: True" in observations(kc, "m7")[0]
    ok(kc, "%config AgentMagics.isolated_env = []\ndel os.environ['OPENAI_API_KEY']")


def test_interrupt_stops_the_childs_action_and_keeps_both_kernels(own_kernel, tmp_path):
    km, kc = own_kernel
    ok(kc, "keep = {'a': [1, 2, 3]}")
    marker = tmp_path / "started"
    spin = f"open({str(marker)!r}, 'w').close()\nn = 0\nwhile True:\n    n += 1"
    ok(kc, scripted("spin", py("x = 7"), py(spin), py("final_answer('should not run')")))
    msg_id = send(kc, "%%agent -m spin --executor isolated --no-guard -o res\nspin forever")
    seen = wait_for_output(kc, msg_id, "while True")  # the live trace shows the action
    wait_for_file(marker, timeout=30)  # the action runs in the child
    interrupt(km, lambda: collect(kc, msg_id, timeout=10, prior=seen), within=5.0)

    assert evaluate(kc, "len(spin.requests)") == 2  # the run ended at the interrupted step
    assert evaluate(kc, "'res' in globals()") is False
    assert evaluate(kc, "keep") == {"a": [1, 2, 3]}
    ok(kc, scripted("after", py("final_answer(x * 6)")))  # the child survived with its state
    ok(kc, "%%agent -m after --executor isolated -o res\nuse x")
    assert evaluate(kc, "res") == 42


def test_the_child_works_in_a_scratch_folder_or_shares_the_notebooks(notebook, tmp_path):
    kc = notebook
    folder = os.path.realpath(tmp_path)
    ok(kc, f"_here = os.getcwd()\nos.chdir({folder!r})\nopen('data.csv', 'w').write('a\\n1\\n')")
    probe = py("import os\nprint('cwd', os.getcwd(), 'sees data:', os.path.exists('data.csv'))")
    write = py("open('out.txt', 'w').write('hi')")
    try:
        for name, flags in (("w1", ""), ("w2", "--workdir ro"), ("w3", "--workdir rw")):
            ok(kc, scripted(name, probe, write, py("final_answer(1)")))
            ok(kc, f"%%agent -m {name} --executor isolated {flags} --reset\nLook around, then write")
        scratch, ro, rw = (observations(kc, name)[:2] for name in ("w1", "w2", "w3"))
    finally:
        ok(kc, "os.chdir(_here)")
    assert f"cwd {folder}" not in scratch[0] and "sees data: False" in scratch[0]  # a scratch folder of its own
    assert f"cwd {folder} sees data: True" in ro[0]
    assert "This code was not run" in ro[1] and "out.txt" in ro[1]  # read-only: the guard refuses the write
    assert f"cwd {folder} sees data: True" in rw[0] and "This code was not run" not in rw[1]
    assert (tmp_path / "out.txt").read_text() == "hi"  # only the read-write run wrote into the notebook's folder


# -- %agent executor ---------------------------------------------------------------------------------


def test_agent_executor_status_restart_and_stop(notebook):
    kc = notebook
    ok(kc, scripted("m8", py("import os\nmarker = os.getpid()"), py("final_answer(marker)")))
    ok(kc, "%%agent -m m8 --executor isolated --vars precious --reset -o first_pid\nRemember your pid")
    pid = evaluate(kc, "first_pid")

    status = ok(kc, "%agent executor status").stdout
    assert f"isolated: running · pid {pid}" in status and "marker" in status and "precious" in status

    restarted = ok(kc, "%agent executor restart").stdout
    assert "restarted the isolated kernel" in restarted and "sent in again: precious" in restarted
    status = ok(kc, "%agent executor status").stdout
    assert f"pid {pid}" not in status and "marker" not in status and "precious" in status

    assert "stopped the isolated kernel" in ok(kc, "%agent executor stop").stdout
    assert "isolated: not running" in ok(kc, "%agent executor status").stdout
    bad = run(kc, "%agent executor reboot")
    assert bad.ename == "UsageError" and "use %agent executor status, restart or stop" in bad.evalue


@pytest.mark.parametrize("flags, message", [
    ("--executor docker", "--executor 'docker': use one of live, isolated, gateway"),
    ("--executor isolated --memory lots", "--memory takes a size such as 2GB or 512MB, not 'lots'"),
    ("--executor isolated --memory 100MB", "give at least 1GB, e.g. --memory 2GB"),
    ("--executor isolated --workdir /tmp", "--workdir '/tmp': use scratch (a temp folder), ro"),
    ("--executor isolated --vars salse", "--vars: no variable named 'salse' (did you mean 'sales'?)"),
    ("--executor isolated --out-vars 1x", "--out-vars: '1x' is not a variable name"),
    ("--vars sales", "--vars only mean something with --executor isolated or gateway"),
    ("--executor isolated --vars sales,handle", "handle (lock) cannot be sent to the kernel: it cannot be pickled"),
    ("--executor gateway", "--executor gateway needs the gateway's address: %config AgentMagics.gateway_url"),
])
def test_bad_executor_flags_are_one_line_errors_that_run_nothing(notebook, flags, message):
    kc = notebook
    ok(kc, scripted("m9", py("final_answer(1)")))
    result = run(kc, f"%%agent -m m9 {flags}\nAnything")
    assert result.ename == "UsageError" and message in result.evalue, result.evalue
    assert "\n" not in result.evalue
    assert evaluate(kc, "len(m9.requests)") == 0
    assert_notebook_intact(kc)


def test_the_relaxed_guard_is_for_the_isolated_kernel_only(notebook):
    kc = notebook
    probe = py("import subprocess\nprint(subprocess.run(['echo', 'ran'], capture_output=True, text=True).stdout)")
    ok(kc, scripted("g1", probe, py("final_answer(1)")))
    ok(kc, "%%agent -m g1 --executor isolated --reset\nRun echo")
    assert observations(kc, "g1")[0].startswith("Observation:\nran")  # AgentMagics.isolated_policy allows it there

    ok(kc, scripted("g2", probe, py("final_answer(1)")))
    ok(kc, "%%agent -m g2 --reset\nRun echo")
    refused = observations(kc, "g2")[0]
    assert "The guard refused this code and it did not run" in refused  # in the notebook's own kernel: never
    assert "import of 'subprocess' is forbidden" in refused

    magics = "get_ipython().magics_manager.registry['AgentMagics']"
    bad = run(kc, f"{magics}.isolated_policy = {{'allow': ['fly']}}")  # what %config sets, its error shown here
    assert bad.ename == "TraitError" and "AgentMagics.isolated_policy: unknown capabilities ['fly']" in bad.evalue
    assert evaluate(kc, f"{magics}.isolated_policy['allow']") == ["write_files", "delete_files", "mutate_data"]


def test_the_tools_agent_reads_what_its_tool_returned_in_the_isolated_kernel(notebook):
    """--agent tools: each call runs as ``result = tool(...)`` in the child; the model reads the tool's answer."""
    kc = notebook
    ok(kc, "from smol_magic import tool\n"
           "@tool\ndef region_total(region: str) -> str:\n"
           "    \"\"\"The revenue of one region.\n\n    Args:\n        region: n, s, e or w\n    \"\"\"\n"
           "    return f'{region} sold {int(sales[sales.region == region].rev.sum())} units'\n"
           "@tool\ndef as_dict(region: str) -> dict:\n"
           "    \"\"\"The region as a record.\n\n    Args:\n        region: n, s, e or w\n    \"\"\"\n"
           "    return {'region': region}")
    ok(kc, scripted("mt", 'Action: {"name": "region_total", "arguments": {"region": "s"}}',
                    'Action: {"name": "as_dict", "arguments": {"region": "e"}}',
                    'Action: {"name": "final_answer", "arguments": {"answer": "s"}}'))
    ok(kc, "%%agent -m mt --agent tools --executor isolated -o best --reset\nWhich region sells most?")
    told = observations(kc, "mt")
    assert "s sold 30 units" in told[0] and "remote kernel" not in told[0]
    assert "{'region': 'e'}" in told[1] and "\"{'region'" not in told[1]  # a repr, not the repr of a repr
    assert evaluate(kc, "best") == "s"
    assert_notebook_intact(kc)
