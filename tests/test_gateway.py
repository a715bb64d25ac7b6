"""``--executor gateway`` against a real ``jupyter kernelgateway`` on 127.0.0.1, started by the tests.

The agent's actions run in the gateway's kernel (another process, started by the gateway), data
goes in and comes back, a transfer over ``--max-transfer`` is refused before anything is sent, and
network faults (a gateway that is down, one killed in the middle of an action, a wrong token)
become a sentence the model and the user can act on, with no hang; after the gateway is back,
the run goes on in a new kernel and says the old one's variables are gone.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

from IPython.core.error import UsageError

from smol_magic.core.models import ScriptedModel
from smol_magic.jupyter.remote.executor import KernelUnavailable, RemoteExecutor
from smol_magic.jupyter.remote.gateway import CHUNK, GatewayKernel, GatewaySettings, Secret
from smol_magic.jupyter.remote.transfer import TransferError

from gateway_server import Gateway, Proxy, free_port, running_gateway
from kernel_helpers import wait_for_file


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture
def executor(gateway):
    remote = RemoteExecutor(GatewayKernel(GatewaySettings.of(gateway.url, gateway.token)))
    yield remote
    remote.stop()
    remote.link.close()


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"region": rng.choice(["north", "south", "east"], rows), "revenue": rng.random(rows),
                         "units": np.arange(rows), "day": pd.date_range("2026-01-01", periods=rows, freq="min")})



def fault_mid_action(remote, started, release, fault):
    """Run an action that blocks until ``release`` exists; ``fault()`` strikes once it has begun. No hang."""
    def strike() -> None:
        wait_for_file(started, timeout=60)
        fault()

    striker = threading.Thread(target=strike)
    striker.start()
    begun = time.monotonic()
    result = remote.execute(f"import os, time\nopen({str(started)!r}, 'w').close()\n"
                            f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.01)")
    striker.join()
    assert time.monotonic() - begun < 30  # no hang
    return result

def test_actions_run_in_a_kernel_the_gateway_started(executor, gateway):
    result = executor.execute("import os\npid = os.getpid()\nprint(pid)")
    assert result.error is None, result.error
    pid = int(result.output.strip())
    assert pid != os.getpid()
    assert gateway.kernel_parent(pid) == gateway.pid  # a child of the gateway process
    assert executor.link.pid() == pid
    # the kernel keeps its state from one action to the next, and the mirror knows its variables
    assert executor.execute("print(pid * 2)").output.strip() == str(pid * 2)
    assert "pid" in executor.namespace


def test_a_dataframe_goes_in_as_binary_frames_and_comes_back(executor):
    df = frame(400_000)  # Arrow IPC of ~10 MB: several frames of CHUNK bytes
    packets = executor.send_variables({"df": df})
    assert packets[0].format == "arrow" and packets[0].nbytes > 2 * CHUNK
    result = executor.execute("by_region = df.groupby('region', as_index=False)['revenue'].sum()\n"
                              "print(len(df), df['units'].sum())")
    assert result.error is None, result.error
    assert result.output.split() == [str(len(df)), str(int(df["units"].sum()))]
    back = executor.fetch("by_region")
    expected = df.groupby("region", as_index=False)["revenue"].sum()
    pd.testing.assert_frame_equal(back, expected)
    pd.testing.assert_frame_equal(executor.fetch("df"), df)


def test_a_transfer_over_the_limit_is_refused_before_anything_is_sent(executor):
    df = frame(50_000)
    with pytest.raises(TransferError) as refused:
        executor.send_variables({"big": df}, max_bytes=100 * 1024)
    text = str(refused.value)
    assert "big (DataFrame," in text and "MB as arrow" in text  # the size, before sending
    assert "100 KB" in text and "--max-transfer" in text  # the limit, and how to raise it
    assert "big" not in executor.namespace
    assert "NameError" in executor.execute("big").error


def test_a_gateway_that_is_down_is_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteExecutor(GatewayKernel(GatewaySettings.of(url)))
    started = time.monotonic()
    result = remote.execute("print(1)")
    assert time.monotonic() - started < 15
    assert f"cannot reach the Jupyter gateway at {url}" in result.error
    assert "jupyter kernelgateway" in result.error and "AgentMagics.gateway_url" in result.error
    with pytest.raises(KernelUnavailable, match="cannot reach the Jupyter gateway"):
        remote.send_variables({"x": 1})


def test_a_wrong_token_says_which_setting_to_fix_and_never_shows_a_token(gateway):
    link = GatewayKernel(GatewaySettings.of(gateway.url, "not-the-token"))
    with pytest.raises(KernelUnavailable) as refused:
        link.start()
    text = str(refused.value)
    assert "401" in text and "AgentMagics.gateway_token" in text and "JUPYTER_GATEWAY_AUTH_TOKEN" in text
    assert "not-the-token" not in text and gateway.token not in text
    assert "not-the-token" not in repr(link.settings) and "not-the-token" not in link.describe()
    assert repr(Secret("not-the-token")) == "'<hidden>'"


def test_settings_say_what_to_write(monkeypatch):
    monkeypatch.delenv("JUPYTER_GATEWAY_URL", raising=False)
    with pytest.raises(ValueError, match="AgentMagics.gateway_url"):
        GatewaySettings.of("")
    with pytest.raises(ValueError, match="http://host:8888"):
        GatewaySettings.of("127.0.0.1:8888")
    monkeypatch.setenv("JUPYTER_GATEWAY_URL", "http://example.org:8888/")
    monkeypatch.setenv("JUPYTER_GATEWAY_AUTH_TOKEN", "from-env")
    settings = GatewaySettings.of("")
    assert settings.url == "http://example.org:8888" and settings.headers() == {"Authorization": "token from-env"}
    assert settings != GatewaySettings.of("", "another")  # a new token is a change of settings


def test_the_gateway_killed_mid_action_is_an_observation_and_the_run_goes_on(tmp_path):
    gateway = Gateway(free_port(), "tok", tmp_path / "gateway.log").start()
    remote = RemoteExecutor(GatewayKernel(GatewaySettings.of(gateway.url, gateway.token)))
    started, release = tmp_path / "started", tmp_path / "release"
    try:
        assert remote.execute("kept = 41").error is None
        gateway.kernel_parent(remote.link.pid())

        result = fault_mid_action(remote, started, release, gateway.kill)
        assert f"the connection to the gateway at {gateway.url} dropped" in result.error, result.error
        assert "the next action starts a fresh gateway kernel" in result.error

        down = remote.execute("print(kept)")  # the gateway is still down: said, at once
        assert f"cannot reach the Jupyter gateway at {gateway.url}" in down.error

        gateway.start()  # back, on the same address: the run goes on in a new kernel
        again = remote.execute("print('back')")
        assert again.error is None, again.error
        assert "back" in again.output and "variables made there before are gone" in again.output
        assert "NameError" in remote.execute("kept").error
    finally:
        remote.stop()
        remote.link.close()
        gateway.stop()


def test_a_kernel_that_dies_on_the_gateway_is_said_and_replaced(executor, gateway):
    assert executor.execute("kept = 1").error is None
    first = executor.link.pid()
    gateway.kernel_parent(first)
    begun = time.monotonic()
    result = executor.execute("import os\nos._exit(1)")
    assert time.monotonic() - begun < 30
    assert "The gateway kernel died: the kernel on the gateway died" in result.error, result.error
    again = executor.execute("print('fresh')")
    assert again.error is None and "fresh" in again.output
    assert "variables made there before are gone" in again.output
    assert executor.link.pid() != first
    gateway.kernel_parent(executor.link.pid())


def test_a_timeout_interrupts_the_remote_action_and_keeps_its_kernel(executor):
    assert executor.execute("kept = 7").error is None
    pid = executor.link.pid()
    begun = time.monotonic()
    result = executor.execute("import time\ntime.sleep(60)", timeout=1.0)
    assert time.monotonic() - begun < 10  # interrupted through POST .../interrupt, not waited out
    assert result.timed_out and "ActionTimeout" in result.error
    after = executor.execute("print(kept)")
    assert after.output.strip() == "7" and executor.link.pid() == pid  # same kernel, state kept


def test_bringing_back_more_than_the_limit_is_refused_with_its_size(executor):
    assert executor.execute("import numpy as np\nbig = np.zeros(3_000_000)\nsmall = [1, 2, 3]").error is None
    executor.link.max_transfer = 1_000_000
    with pytest.raises(TransferError) as refused:
        executor.fetch("big")
    text = str(refused.value)
    assert "big (ndarray, 23 MB as pickle) was not brought back" in text
    assert "transfer limit of 977 KB" in text and "--max-transfer" in text
    assert executor.fetch("small") == [1, 2, 3]  # small ones still come
    executor.link.max_transfer = None
    assert executor.fetch("big").shape == (3_000_000,)


def test_the_notebooks_tools_are_called_from_the_gateway_kernel(executor):
    calls = []

    def double(x):
        calls.append(os.getpid())
        return 2 * x

    executor.send_tools({"double": double})
    result = executor.execute("print(double(21))")
    assert result.error is None, result.error
    assert result.output.strip() == "42" and calls == [os.getpid()]  # it ran here, in the notebook's process


def test_a_cell_says_what_is_missing_or_wrong_before_anything_runs(ip, monkeypatch):
    monkeypatch.delenv("JUPYTER_GATEWAY_URL", raising=False)
    ip.user_ns["m"] = ScriptedModel(["```python\nfinal_answer(1)\n```"])
    with pytest.raises(UsageError, match=r"needs the gateway's address: %config AgentMagics.gateway_url"):
        ip.run_cell_magic("agent", "-m m --executor gateway", "task")
    ip.run_line_magic("config", f"AgentMagics.gateway_url = 'http://127.0.0.1:{free_port()}'")
    with pytest.raises(UsageError, match=r"--max-transfer takes a size such as 2GB"):
        ip.run_cell_magic("agent", "-m m --executor gateway --max-transfer lots", "task")
    with pytest.raises(UsageError, match=r"--max-transfer only means something with --executor gateway"):
        ip.run_cell_magic("agent", "-m m --executor isolated --max-transfer 1GB", "task")
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"cannot reach the Jupyter gateway at http://127.0.0.1:\d+ .*: start the "
                                         r"gateway .* AgentMagics.gateway_url"):
        ip.run_cell_magic("agent", "-m m --executor gateway", "task")  # down at the start: one short error
    assert time.monotonic() - started < 15
    assert ip.user_ns["m"].requests == []  # the model was never asked


def test_a_connection_dropped_mid_action_is_said_and_the_next_action_goes_on(gateway, tmp_path):
    proxy = Proxy(gateway.port)
    remote = RemoteExecutor(GatewayKernel(GatewaySettings.of(proxy.url, gateway.token)))
    started, release = tmp_path / "started", tmp_path / "release"
    try:
        assert remote.execute("kept = 1").error is None
        gateway.kernel_parent(remote.link.pid())
        old_kernel = remote.link.kernel_id

        result = fault_mid_action(remote, started, release, proxy.cut)
        assert f"the connection to the gateway at {proxy.url} dropped" in result.error, result.error

        again = remote.execute("print('on')")  # the gateway is still up: a new kernel there, said
        assert again.error is None and "on" in again.output
        assert "variables made there before are gone" in again.output
        gateway.kernel_parent(remote.link.pid())
        assert old_kernel not in gateway.kernel_ids()  # the old kernel was shut down, not left running
        assert remote.link.kernel_id in gateway.kernel_ids()
    finally:
        release.touch()
        remote.stop()
        remote.link.close()
        proxy.close()


def test_a_restart_is_a_fresh_kernel_with_the_sent_variables_sent_again(executor, gateway):
    executor.send_variables({"sent": {"a": 1}})
    assert executor.execute("made = 2").error is None
    before = executor.link.pid()
    executor.restart()  # %agent executor restart: POST .../restart
    gateway.kernel_parent(executor.link.pid())
    assert executor.link.pid() != before
    assert executor.execute("print(sent)").output.strip() == "{'a': 1}"
    assert "NameError" in executor.execute("made").error
