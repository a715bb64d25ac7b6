"""``%%agent --executor gateway`` in a real user kernel driven as JupyterLab drives it, with a real kernel gateway.

The agent's actions run in the gateway's kernel, not the notebook's: the action reports its process
id, which is not the notebook kernel's and whose parent is the gateway. A DataFrame goes in with
``--vars`` and its summary comes back with ``--out-vars``; the token (from the environment) is never
shown. A gateway killed while an action runs ends that action with a sentence, the cell finishes
(no hang), and once the gateway is back the next cell runs in a new kernel there.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest

from gateway_server import Gateway, free_port, parent_pid, running_gateway
from kernel_helpers import evaluate, ok, py, run, running_kernel, scripted

TOKEN = "kernel-test-token-3f9a"


def cell(kc, code: str, timeout: float = 120):
    """A cell run as JupyterLab runs it: with its cell id."""
    result = run(kc, code, timeout=timeout, cell_id=uuid.uuid4().hex)
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    return result


@pytest.fixture
def token_env(monkeypatch):
    """The token reaches the notebook's kernel as it should: in its environment, not in a cell."""
    monkeypatch.setenv("JUPYTER_GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("JUPYTER_GATEWAY_URL", raising=False)


def test_an_agent_run_works_in_the_gateway_kernel_and_brings_a_frame_back(token_env, tmp_path):
    with running_gateway(tmp_path, token=TOKEN) as gateway, running_kernel() as (km, kc):
        ok(kc, "import numpy as np, pandas as pd\n"
               "rng = np.random.default_rng(1)\n"
               "df = pd.DataFrame({'region': rng.choice(['north', 'south', 'east'], 300_000), "
               "'revenue': rng.random(300_000)})")
        ok(kc, f"%config AgentMagics.gateway_url = {gateway.url!r}")
        ok(kc, scripted("m", py("import os\nprint('kernel pid', os.getpid())\n"
                                "summary = df.groupby('region', as_index=False)['revenue'].sum()\n"
                                "print(len(summary), 'regions')", "sum by region"),
                        py("final_answer(len(summary))")))
        result = cell(kc, "%%agent -m m --executor gateway --vars df --out-vars summary --approve never --no-guard -o n\n"
                          "Sum the revenue of `df` by region.")
        shown = result.text + result.trace
        sending = re.search(r"sending to the gateway kernel: df \(DataFrame, ([\d.]+) MB as arrow\)", result.text)
        assert sending and float(sending.group(1)) > 4  # a big one is announced, with its size, before it goes
        assert result.text.index("sending to the gateway") < result.text.index("sent to the gateway kernel: df")
        remote_pid = int(re.search(r"kernel pid (\d+)", shown).group(1))
        assert remote_pid != evaluate(kc, "__import__('os').getpid()")
        assert parent_pid(remote_pid) == gateway.pid  # the gateway started it
        gateway.kernels.add(remote_pid)
        assert evaluate(kc, "n") == 3
        assert evaluate(kc, "type(summary).__name__") == "DataFrame"
        assert evaluate(kc, "summary.equals(df.groupby('region', as_index=False)['revenue'].sum())") is True
        assert evaluate(kc, "len(df)") == 300_000  # the notebook's own frame, untouched
        status = cell(kc, "%agent executor status --executor gateway")
        assert f"pid {remote_pid}" in status.text and gateway.url in status.text
        config = cell(kc, "%config AgentMagics")
        assert "gateway_token" in config.text
        for text in (shown, status.text, config.text):
            assert TOKEN not in text

        ok(kc, scripted("m3", py("final_answer(1)")))
        refused = run(kc, "%%agent -m m3 --executor gateway --vars df --max-transfer 10KB\nLook at {df}.",
                      cell_id=uuid.uuid4().hex, timeout=60)
        assert refused.status == "error" and refused.ename == "UsageError"
        assert "df (DataFrame, " in refused.evalue and "transfer limit of 10 KB" in refused.evalue
        assert "raise --max-transfer" in refused.evalue


def test_a_gateway_killed_mid_action_ends_that_action_and_the_next_cell_reconnects(token_env, tmp_path):
    gateway = Gateway(free_port(), TOKEN, tmp_path / "gateway.log").start()
    started, release = tmp_path / "started", tmp_path / "release"
    try:
        with running_kernel() as (km, kc):
            ok(kc, f"%config AgentMagics.gateway_url = {gateway.url!r}")
            ok(kc, scripted("m", py(f"import os, time\nopen({str(started)!r}, 'w').close()\n"
                                    f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.01)"),
                            py("final_answer('unreachable')")))

            done = threading.Event()

            def kill_when_started() -> None:
                while not started.exists() and not done.is_set():
                    time.sleep(0.01)  # the next look for the action's file
                gateway.kill()

            killer = threading.Thread(target=kill_when_started)
            killer.start()
            try:
                result = cell(kc, "%%agent -m m --executor gateway --approve never --no-guard --max-steps 2\n"
                                  "Wait for the file.", timeout=90)
            finally:
                done.set()
                killer.join()
            assert started.exists()
            trace = result.text + result.trace
            assert f"The gateway kernel died: the connection to the gateway at {gateway.url} dropped" in trace
            assert f"cannot reach the Jupyter gateway at {gateway.url}" in trace  # step 2: still down, said at once

            gateway.start()
            ok(kc, scripted("m2", py("print('back again')\nfinal_answer('ok')")))
            again = cell(kc, "%%agent -m m2 --executor gateway --approve never --no-guard -o answer\nSay you are back.")
            assert "back again" in again.text + again.trace
            assert "fresh gateway kernel: the variables made in the old one are gone" in again.text
            assert evaluate(kc, "answer") == "ok"
    finally:
        gateway.stop()
