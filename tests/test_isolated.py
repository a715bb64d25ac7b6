"""The isolated executor from plain Python: a real child kernel, driven by ``RemoteExecutor`` and a ``CodeAgent``.

What a user of ``--executor isolated`` relies on, below the magic: variables
travel in and out as equal objects (Arrow for tables, pickle for the rest), a
variable that cannot travel says so by name, the model sees the child's own
summary of what is there, tools defined in the notebook are called from the
child, and the child's environment holds no credentials. The magic, crashes
and limits in a real notebook kernel are in tests/test_isolated_kernel.py.
"""

from __future__ import annotations

import os
import threading

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from smol_magic.core.agents import CodeAgent
from smol_magic.core.models import ScriptedModel
from smol_magic.core.tools import tool
from smol_magic.jupyter.remote import transfer
from smol_magic.jupyter.remote.executor import RemoteExecutor, RemoteValue
from smol_magic.jupyter.remote.isolated import IsolatedKernel, Settings, child_environment


@pytest.fixture(scope="module")
def executor():
    """One child kernel for the module: each test uses names of its own."""
    ex = RemoteExecutor(IsolatedKernel(Settings()))
    yield ex
    ex.stop()


def py(code: str) -> str:
    return f"```python\n{code}\n```"


# -- data in and out ---------------------------------------------------------------------------------


def test_tables_and_objects_round_trip_as_equal_objects(executor):
    frame = pd.DataFrame({"region": ["n", "s", "e"], "rev": [10.5, 30.0, None], "units": [1, 2, 3]},
                         index=pd.Index([7, 8, 9], name="store"))
    values = {"frame": frame, "table": pa.table({"a": [1, 2, 3]}), "pframe": pl.DataFrame({"b": ["x", "y"]}),
              "mixed": {"k": [1, (2, 3)], "s": {4}}}
    packets = executor.send_variables(values)

    assert {p.name: p.format for p in packets} == {"frame": "arrow", "table": "arrow", "pframe": "arrow",
                                                   "mixed": "pickle"}
    assert all(p.nbytes > 0 for p in packets)  # the sizes are known before anything is sent
    result = executor.execute("frame2 = frame.assign(double=frame.units * 2)\n"
                              "print(type(table).__name__, type(pframe).__name__, mixed['k'][1])")
    assert result.error is None, result.error
    assert result.output == "Table DataFrame (2, 3)"
    assert result.changes["created"] == ["frame2"]

    back = executor.fetch("frame2")
    expected = frame.assign(double=frame.units * 2)
    pd.testing.assert_frame_equal(back, expected)  # dtypes, NaN and the named index survive both ways
    assert executor.fetch("table").equals(values["table"])
    assert executor.fetch("pframe").equals(values["pframe"])
    assert executor.fetch("mixed") == values["mixed"]


def test_a_variable_that_cannot_travel_says_so_by_name(executor):
    lock = threading.Lock()
    with pytest.raises(transfer.TransferError, match=r"^handle \(lock\) cannot be sent to the kernel: it cannot be "
                                                     r"pickled"):
        executor.send_variables({"fine": 1, "handle": lock})
    assert "fine" not in executor.namespace  # nothing was sent: all are packed before any goes

    result = executor.execute("import threading\nkernel_lock = threading.Lock()")
    assert result.error is None, result.error
    with pytest.raises(transfer.TransferError, match="kernel_lock cannot be brought back from the isolated kernel"):
        executor.fetch("kernel_lock")
    with pytest.raises(transfer.TransferError, match="there is no variable 'nothing_here'"):
        executor.fetch("nothing_here")


def test_sizes_are_parsed_with_clear_errors():
    assert transfer.parse_size("2GB", "--memory") == 2 * 2**30
    assert transfer.parse_size("512 mb", "--memory") == 512 * 2**20
    assert transfer.parse_size("1.5G", "--memory") == int(1.5 * 2**30)
    for bad in ("lots", "-1GB", "2XB", ""):
        with pytest.raises(ValueError, match="--memory takes a size such as 2GB or 512MB"):
            transfer.parse_size(bad, "--memory")
    assert transfer.size_text(2 * 2**30) == "2 GB" and transfer.size_text(1536 * 2**20) == "1.5 GB"


# -- what the model sees -----------------------------------------------------------------------------


def test_the_model_sees_the_childs_variables_and_what_each_action_changed(executor):
    executor.send_variables({"orders": pd.DataFrame({"sku": ["a", "b"], "qty": [3, 4]})})
    model = ScriptedModel([py("big_orders = orders[orders.qty > 3]\nprint(len(big_orders))"),
                           py("final_answer(big_orders.sku.tolist())")])
    agent = CodeAgent(model=model, executor=executor)

    assert agent.run("Which orders are big?") == ["b"]  # the final answer comes back as an object

    task = model.requests[0][-1]["content"]
    assert "- orders: DataFrame" in task and "sku" in task and "qty" in task  # the child's own summary
    assert "Your code runs in the isolated kernel, a separate Python process" in task
    observation = model.requests[1][-1]["content"]
    assert "1" in observation and "created big_orders: DataFrame" in observation
    assert isinstance(executor.namespace["big_orders"], RemoteValue)


def test_a_tool_of_the_notebook_is_called_from_the_child(executor):
    calls = []

    @tool
    def lookup(code: str) -> str:
        """Find a country's name.

        Args:
            code: an ISO country code
        """
        calls.append((code, os.getpid()))
        return {"FR": "France"}.get(code, "?")

    model = ScriptedModel([py("name = lookup(code='FR')\nprint(name)"), py("final_answer(name)")])
    agent = CodeAgent(tools=[lookup], model=model, executor=executor)

    assert agent.run("What is FR?") == "France"
    assert calls == [("FR", os.getpid())]  # it ran here, in the notebook's process, not in the child
    assert executor.kernel_pid != os.getpid()


# -- no credentials ----------------------------------------------------------------------------------


def test_the_child_environment_drops_what_looks_like_a_credential():
    env = {"PATH": "/usr/bin", "OPENAI_API_KEY": "sk-proj-abcdefgh12345678", "HF_TOKEN": "hf_abcdefghijklmnop",
           "DB_PASSWORD": "hunter2hunter2", "MY_SETTING": "sk-ant-api03-abcdefghijklmnopqrstu", "LANG": "C.UTF-8"}
    assert child_environment(env) == {"PATH": "/usr/bin", "LANG": "C.UTF-8"}  # by name, and by value
    assert child_environment(env, passed=("HF_TOKEN",)) == {"PATH": "/usr/bin", "LANG": "C.UTF-8",
                                                             "HF_TOKEN": "hf_abcdefghijklmnop"}
