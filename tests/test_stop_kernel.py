"""Issue 12 §1 and §4 in a real kernel: runs that always stop, and output that stays in its step.

An action that catches everything (``except:``) still ends at the timeout and at Interrupt, and
the kernel, the user's variables and the conversation survive; a hung model server ends at
``--model-timeout`` with a clear message. Each test has a kernel of its own: a regression that
wedges one fails that test only.
"""

from __future__ import annotations


from kernel_helpers import (
    collect, evaluate, interrupt, ok, py, run, scripted, send, started_marker, wait_for_file, wait_for_output,
)
from openai_server import OpenAIServer

pytest_plugins = ["kernel_fixtures"]

SWALLOWING = ("started()\nresult = None\nwhile result is None:\n    try:\n        result = df.loc[99, 'a']\n"
              "    except:\n        continue")


def test_timeout_stops_an_action_that_catches_everything(own_kernel, tmp_path):
    km, kc = own_kernel
    started_marker(kc, tmp_path)
    ok(kc, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})")
    ok(kc, scripted("m", py(SWALLOWING, "find row 99"), py("final_answer('gave up on 99')")))

    result = run(kc, "%%agent -m m --approve never --timeout 2 -o res\nfind row 99", timeout=60)

    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    assert result.elapsed < 30, "it ends"
    assert evaluate(kc, "res") == "gave up on 99"
    told = evaluate(kc, "m.requests[1][-1]['content']")
    assert "2 s time limit" in told, told
    assert evaluate(kc, "df.a.tolist()") == [1, 2, 3]
    # The conversation goes on in the next cell.
    ok(kc, scripted("m2", py("final_answer('continued')")))
    ok(kc, "%%agent -m m2 -o res2\nand now?")
    assert any("find row 99" in m["content"] for m in evaluate(kc, "m2.requests[0]"))


def test_interrupt_stops_an_action_that_catches_everything(own_kernel, tmp_path):
    km, kc = own_kernel
    marker = started_marker(kc, tmp_path)
    ok(kc, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\nkeep = 'mine'")
    ok(kc, scripted("m", py(SWALLOWING, "find row 99"), py("final_answer('must not run')")))

    msg_id = send(kc, "%%agent -m m --approve never -o res\nfind row 99", cell_id="cell-swallow")
    seen = wait_for_output(kc, msg_id, "while result is None")
    wait_for_file(marker)
    interrupt(km, lambda: collect(kc, msg_id, timeout=15, prior=seen), within=10.0)

    assert evaluate(kc, "len(m.requests)") == 1  # the run ended: no further step
    assert evaluate(kc, "(keep, df.a.tolist())") == ("mine", [1, 2, 3])
    ok(kc, scripted("m2", py("final_answer(len(df))")))
    ok(kc, "%%agent -m m2 -o res2\nhow many rows?")
    assert evaluate(kc, "res2") == 3
    assert any("find row 99" in m["content"] for m in evaluate(kc, "m2.requests[0]")), "the conversation was lost"


def test_a_hung_model_server_ends_at_the_model_timeout(own_kernel):
    km, kc = own_kernel
    with OpenAIServer() as srv:
        for _ in range(4):
            srv.push_hang()
        ok(kc, "from smol_magic import LiteLLMModel\n"
               f"hung = LiteLLMModel('openai/local-model', api_base={srv.base_url!r}, api_key='sk-test')\n"
               "keep = [1, 2]")

        result = run(kc, "%%agent -m hung --model-timeout 2\ntask", timeout=60)

    assert result.status == "error" and result.ename == "UsageError", (result.ename, result.evalue)
    assert result.elapsed < 30, "it ends"
    assert "no reply within 2 s" in result.evalue and "--model-timeout" in result.evalue, result.evalue
    assert evaluate(kc, "(keep, hung.timeout)") == ([1, 2], 120.0)  # the user's own model keeps its setting


# -- §4: output written below Python, and by threads an action leaves behind ----------------------------------


def test_output_written_to_the_file_descriptors_is_the_steps_and_bounded(own_kernel):
    km, kc = own_kernel
    action = ("import os\nos.write(1, b'C-LEVEL-LINE\\n')\nos.write(2, b'C-LEVEL-ERR\\n')\n"
              "os.write(1, b'x' * 5_000_000)\nfinal_answer('wrote')")
    ok(kc, scripted("m", py(action, "write below Python")))

    result = ok(kc, "%%agent -m m --no-guard --approve never -o res\nwrite", timeout=60)

    assert evaluate(kc, "res") == "wrote"
    steps = evaluate(kc, "[s.observation for s in get_ipython().magics_manager.registry['AgentMagics']"
                         ".current.memory.steps if hasattr(s, 'observation')]")
    assert "C-LEVEL-LINE" in steps[0] and "C-LEVEL-ERR" in steps[0], steps[0][:300]
    shown = sum(len(o.get("text", "")) + len(str(o.get("data", ""))) for o in result.outputs)
    assert shown < 2_000_000, f"the cell holds {shown:,} characters of a 5 MB write"
    later = ok(kc, "print('later cell')")
    assert later.stdout == "later cell\n", later.stdout[:200]


def test_a_thread_left_running_by_an_action_does_not_print_into_later_cells(own_kernel):
    km, kc = own_kernel
    ok(kc, "import threading\ngo, done = threading.Event(), threading.Event()")
    action = ("import threading\ndef talk():\n    go.wait()\n    print('STRAY-OUTPUT')\n    done.set()\n"
              "threading.Thread(target=talk, daemon=True).start()\nfinal_answer('started')")
    ok(kc, scripted("m", py(action, "start a thread")))
    ok(kc, "%%agent -m m --no-guard --approve never -o res\nstart it")
    told = evaluate(kc, "get_ipython().magics_manager.registry['AgentMagics'].current.memory.steps[-2].observation")
    assert "thread(s) started by this action still run" in told, told

    later = ok(kc, "go.set()\nassert done.wait(10)\nimport sys\nsys.stdout.flush()\nprint('my own output')")

    assert "STRAY-OUTPUT" not in later.text, later.text
    assert later.stdout == "my own output\n"
    assert "STRAY-OUTPUT" not in ok(kc, "print('and the next')").text
