"""``--executor gateway``: actions run in a kernel started through a Jupyter Kernel Gateway or Enterprise Gateway.

It speaks the protocol JupyterLab's ``GatewayClient`` speaks: ``POST /api/kernels``
starts the kernel, one websocket on ``/api/kernels/{id}/channels`` carries all its
channels, ``POST .../interrupt`` and ``.../restart`` and ``DELETE`` manage it. The
token travels in an ``Authorization: token ...`` header only: never in a URL, a
message, a repr or the run store.

Why not jupyter_server's own ``GatewayKernelManager`` / ``GatewayKernelClient``:
they read a process-wide ``GatewayClient`` singleton; their REST calls need an
asyncio loop, and the kernel's loop is busy running the ``%%agent`` cell (the
action runs synchronously on the main thread); their ``get_msg`` spins on
``asyncio.sleep(0)`` while waiting; and their channels carry JSON text only,
so data could not travel as binary frames. This is a small blocking client
instead: ``websockets``' synchronous client (C-accelerated masking, keepalive
pings), ``httpx`` for REST, jupyter_client's ``Session`` for the messages and
jupyter_server's own
(de)serializers for the wire formats (the ``v1.kernel.websocket.jupyter.org``
subprotocol when the gateway offers it, the legacy JSON / binary format if not).

Data in: each variable's bytes go as binary websocket frames (comm messages
with buffers, ``CHUNK`` bytes each, under tornado's 10 MB frame limit) into a
file in the kernel's temp folder, which the helper then reads as it reads a
file of the isolated kernel. Sizes are known, and checked against
``--max-transfer``, before anything is sent.

Faults are sentences, and waits are bounded: a gateway that does not answer
at start is ``KernelUnavailable`` naming the URL and what to do; a websocket
that drops while an action runs makes ``alive()`` false, so the action ends at
once with ``death()``'s reason as its observation; the next action starts a
new kernel and the executor says the old one's variables are gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from IPython.core.error import UsageError

from .executor import KernelUnavailable
from .isolated import SHM_MIN_FREE, _memory_folder
from .transfer import TransferError, parse_size, size_text

URL_ENV = "JUPYTER_GATEWAY_URL"  # the names JupyterLab's GatewayClient reads
TOKEN_ENV = "JUPYTER_GATEWAY_AUTH_TOKEN"
V1 = "v1.kernel.websocket.jupyter.org"
CHUNK = 4 * 2**20  # bytes per binary frame: tornado (the gateway's server) refuses frames over 10 MB by default
CONNECT_TIMEOUT = 10.0  # seconds to reach the gateway (REST or websocket)
REQUEST_TIMEOUT = 20.0  # seconds for one REST call once connected
START_TIMEOUT = 120.0  # a kernel on a cluster (Enterprise Gateway: YARN, Kubernetes) may take a while to start
READY_TIMEOUT = 60.0  # from the websocket's opening to the kernel's first kernel_info_reply
PING_EVERY = 10.0  # seconds between keepalive pings on the websocket
DEAD_AFTER = 30.0  # at most this long after the gateway goes silent, the connection counts as lost
UPLOAD_TARGET = "smol_magic.gateway.upload"
DOWNLOAD_TARGET = "smol_magic.gateway.download"
DOWNLOAD_QUIET = 30.0  # seconds a download may go without a message before it counts as failed
WHAT_TO_DO = (f"start the gateway (e.g. jupyter kernelgateway --port 8888), or point %config AgentMagics.gateway_url "
              f"(or ${URL_ENV}) at a running one")


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway is and how to get in; a change of these starts a new kernel."""

    url: str
    token: str = field(default="", repr=False, compare=False)  # never shown
    token_id: str = ""  # a digest of the token, so a new token still counts as a change of settings
    kernel_name: str = "python3"

    @classmethod
    def of(cls, url: str, token: str = "", kernel_name: str = "python3") -> "GatewaySettings":
        """Checked settings; ``ValueError`` with what to write."""
        url = (url or os.environ.get(URL_ENV, "")).strip().rstrip("/")
        token = token or os.environ.get(TOKEN_ENV, "")
        if not url:
            raise ValueError(f"--executor gateway needs the gateway's address: %config AgentMagics.gateway_url = "
                             f"\"http://host:8888\" (or set ${URL_ENV})")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the gateway URL {url!r} is not an http(s) address: write it as http://host:8888 "
                             "(AgentMagics.gateway_url or $" + URL_ENV + ")")
        if parts.username or parts.password or parts.query:
            raise ValueError("the gateway URL must not carry credentials or a query: give the token in "
                             f"AgentMagics.gateway_token or ${TOKEN_ENV}")
        digest = hashlib.sha256(token.encode()).hexdigest()[:12] if token else ""
        return cls(url=url, token=token, token_id=digest, kernel_name=kernel_name)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}


class Secret(str):
    """The gateway's token as a trait value: ``%config AgentMagics`` and reprs show that one is set, not what it is."""

    def __repr__(self) -> str:
        return "'<hidden>'" if self else "''"


def settings_for(magics: Any) -> GatewaySettings:
    """The gateway settings of ``AgentMagics`` (or the environment); ``UsageError`` with what to write."""
    try:
        return GatewaySettings.of(magics.gateway_url, str(magics.gateway_token))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def max_transfer(magics: Any, args: Any) -> int | None:
    """``--max-transfer`` (else ``AgentMagics.max_transfer``) in bytes; ``0``/``none``: no limit."""
    text = getattr(args, "max_transfer", None) or magics.max_transfer
    if not text or str(text).strip().lower() in ("0", "none"):
        return None
    try:
        return parse_size(text, "--max-transfer")
    except ValueError as exc:
        raise UsageError(f"{exc} (e.g. --max-transfer 500MB; 0 for no limit)") from None


class Channels:
    """A kernel's channels over one websocket: a jupyter_client-style blocking client.

    A reader thread routes each message into its channel's queue; ``lost`` says why the
    connection ended, once it has. ``execute``, ``get_iopub_msg``, ``get_shell_msg``,
    ``get_stdin_msg`` and ``input`` are what ``RemoteExecutor`` uses. The websocket is
    ``websockets``' synchronous client: C-accelerated masking (every byte a client sends is
    masked, which is most of the cost of sending data) and keepalive pings, so a gateway that
    goes silent is noticed within ``DEAD_AFTER`` seconds.
    """

    def __init__(self, settings: GatewaySettings, kernel_id: str):
        from jupyter_client.session import Session
        from websockets.sync.client import connect

        # The gateway signs what it forwards with its own key; this one only quiets "signing is disabled".
        self.session = Session(key=uuid.uuid4().hex.encode(), username="smol-magic")
        self.where = f"the connection to the gateway at {settings.url}"
        url = (f"{settings.ws_url}/api/kernels/{quote(kernel_id, safe='')}/channels"
               f"?session_id={self.session.session}")
        self.queues: dict[str, queue.SimpleQueue] = {c: queue.SimpleQueue()
                                                    for c in ("shell", "iopub", "stdin", "control")}
        self.lost: str | None = None
        self.kernel_state = "starting"  # the last execution_state the kernel published (dead/restarting matter)
        self._closing = False
        self._stack = contextlib.ExitStack()  # connect() as a context manager, as websockets wants it; closed in close()
        self.ws = self._stack.enter_context(connect(
            url, additional_headers=settings.headers(), subprotocols=[V1], compression=None, open_timeout=CONNECT_TIMEOUT,
            ping_interval=PING_EVERY, ping_timeout=DEAD_AFTER - PING_EVERY, close_timeout=1, max_size=None, proxy=None))
        self.v1 = self.ws.subprotocol == V1
        self._reader = threading.Thread(target=self._read, name="smol-magic-gateway", daemon=True)
        self._reader.start()

    # -- sending ----------------------------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any], buffers: list[Any] | None = None,
             parent: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> str:
        """Send one message; returns its msg_id. A lost connection is not raised: ``lost`` says it."""
        msg = self.session.msg(msg_type, content, parent=parent, metadata=metadata)
        try:
            self.ws.send(self._encode(channel, msg, buffers or []))
        except Exception as exc:  # noqa: BLE001 - the link reports it through alive()/death()
            self._lose(f"{self.where} dropped ({_reason(exc)})")
        return msg["header"]["msg_id"]

    def _encode(self, channel: str, msg: dict[str, Any], buffers: list[Any]) -> bytes | str:
        from jupyter_server.services.kernels.connection.base import serialize_binary_message, serialize_msg_to_ws_v1

        pack = self.session.pack
        if self.v1:
            parts = [pack(msg["header"]), pack(msg["parent_header"]), pack(msg["metadata"]), pack(msg["content"]),
                     *buffers]
            return serialize_msg_to_ws_v1(parts, channel)
        if buffers:
            return serialize_binary_message({**_plain(msg), "channel": channel, "buffers": [bytes(b) for b in buffers]})
        return json.dumps({**_plain(msg), "channel": channel})

    def execute(self, code: str, silent: bool = False, store_history: bool = True,
                user_expressions: dict[str, str] | None = None, allow_stdin: bool = False,
                stop_on_error: bool = True) -> str:
        content = {"code": code, "silent": silent, "store_history": store_history,
                   "user_expressions": user_expressions or {}, "allow_stdin": allow_stdin,
                   "stop_on_error": stop_on_error}
        return self.send("shell", "execute_request", content)

    def input(self, text: str) -> None:
        self.send("stdin", "input_reply", {"value": text})

    # -- receiving --------------------------------------------------------------------------------

    def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self._get("iopub", timeout)

    def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self._get("shell", timeout)

    def get_stdin_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self._get("stdin", timeout)

    def get_control_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self._get("control", timeout)

    def _get(self, channel: str, timeout: float | None) -> dict[str, Any]:
        q = self.queues[channel]
        if timeout is not None and timeout <= 0:
            return q.get_nowait()
        return q.get(timeout=timeout)

    def _read(self) -> None:
        while True:
            try:
                data = self.ws.recv()
            except Exception as exc:  # noqa: BLE001 - closed, reset, a keepalive ping unanswered: the end
                self._lose(f"{self.where} dropped ({_reason(exc)})")
                return
            _quick_ack(self.ws.socket)
            try:
                channel, msg = self._decode(data)
            except Exception:  # noqa: BLE001 - a malformed frame is skipped, as JupyterLab skips it
                continue
            if channel == "iopub" and msg["msg_type"] == "status":
                self.kernel_state = msg["content"].get("execution_state", self.kernel_state)
            target = self.queues.get(channel)
            if target is not None:
                target.put(msg)

    def _decode(self, data: bytes | str) -> tuple[str, dict[str, Any]]:
        from jupyter_server.services.kernels.connection.base import (deserialize_binary_message,
                                                                     deserialize_msg_from_ws_v1)

        if self.v1:
            channel, parts = deserialize_msg_from_ws_v1(data)
            unpack = self.session.unpack
            msg = {"header": unpack(parts[0]), "parent_header": unpack(parts[1]), "metadata": unpack(parts[2]),
                   "content": unpack(parts[3]), "buffers": parts[4:]}
        else:
            msg = deserialize_binary_message(data) if isinstance(data, bytes) else json.loads(data)
            channel = msg.pop("channel", "")
            msg.setdefault("buffers", [])
        msg["msg_type"], msg["msg_id"] = msg["header"]["msg_type"], msg["header"]["msg_id"]
        return channel, msg

    # -- health -----------------------------------------------------------------------------------

    def check(self) -> bool:
        """Still connected (websockets' keepalive pings notice a gateway gone silent)."""
        return self.lost is None

    def _lose(self, why: str) -> None:
        if self.lost is None and not self._closing:
            self.lost = why

    def close(self) -> None:
        self._closing = True
        try:
            self._stack.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._reader.join(2)


def _quick_ack(sock: Any) -> None:
    """Acknowledge at once what the gateway sent (Linux: TCP_QUICKACK, which resets after each read).

    The gateway's server (tornado) writes each message as its own small segment with Nagle's
    algorithm on, so each waits for the ACK of the one before; a delayed ACK makes that ~40 ms,
    for each of the 3-4 messages an action's reply takes.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except (OSError, AttributeError):
            pass


def _plain(msg: dict[str, Any]) -> dict[str, Any]:
    """A Session message as the legacy JSON wire format wants it (dates as strings)."""
    from jupyter_client.jsonutil import json_default

    return json.loads(json.dumps({k: msg[k] for k in ("header", "parent_header", "metadata", "content")},
                                 default=json_default))


def _reason(exc: BaseException) -> str:
    """An exception in a few words: a refused or reset connection, a timeout, a close."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    for cause in (exc.__cause__, exc.__context__):
        if cause is not None and str(cause).strip() and str(cause).strip() not in text:
            text += f": {str(cause).strip()}"
    return text[:300]


# Run in each fresh kernel: the ends of the two comms data travels by. An upload's messages carry buffers
# that are appended to a file there; a download's opening names a file there, sent back in buffers and removed.
RECEIVER_CODE = f"""
def _smol_magic_gateway_receiver():
    import os
    from comm import get_comm_manager

    def download(comm, msg):
        data = msg['content']['data']
        try:
            if data.get('send'):
                with open(data['path'], 'rb') as f:
                    while True:
                        chunk = f.read({CHUNK})
                        if not chunk:
                            break
                        comm.send({{}}, buffers=[chunk])
        finally:
            try:
                os.unlink(data['path'])
            except OSError:
                pass
            comm.close()

    def opened(comm, msg):
        data = msg['content']['data']
        path = data['path']
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        def chunk(msg):
            for buf in msg.get('buffers') or ():
                os.write(fd, buf)
        def closed(msg):
            os.close(fd)
        comm.on_msg(chunk)
        comm.on_close(closed)

    get_comm_manager().register_target({UPLOAD_TARGET!r}, opened)
    get_comm_manager().register_target({DOWNLOAD_TARGET!r}, download)
_smol_magic_gateway_receiver()
del _smol_magic_gateway_receiver
"""


class GatewayKernel:
    """A kernel started through a Jupyter Kernel Gateway or Enterprise Gateway: the ``KernelLink`` of ``gateway``."""

    name = "gateway"
    local_files = False  # the kernel's files are on the gateway's machines
    memory_limit = None  # the gateway's, if any: not known here

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.kernel_id: str | None = None
        self.client: Channels | None = None
        self.kernel_pid: int | None = None
        self.temp_dir: str | None = None  # the kernel's temp folder, where uploads land
        self._why: str | None = None  # why the kernel was lost, besides the connection
        self._http: Any = None
        self._staging: str | None = None
        self.max_transfer: int | None = None  # bytes one variable may bring back (--max-transfer); None: no limit

    # -- REST -------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float = REQUEST_TIMEOUT) -> Any:
        """One REST call; ``KernelUnavailable`` in words when the gateway cannot be reached or refuses."""
        import httpx

        if self._http is None:  # like Jupyter's GatewayClient, not through $HTTP_PROXY
            self._http = httpx.Client(trust_env=False)
        url = f"{self.settings.url}{path}"
        try:
            response = self._http.request(method, url, json=body, headers=self.settings.headers(),
                                          timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
        except httpx.ConnectError as exc:
            raise KernelUnavailable(f"cannot reach the Jupyter gateway at {self.settings.url} ({_reason(exc)}): "
                                    f"{WHAT_TO_DO}") from None
        except httpx.TimeoutException:
            raise KernelUnavailable(f"the Jupyter gateway at {self.settings.url} did not answer within "
                                    f"{timeout:g} s ({method} {path}); check that it is running and reachable") from None
        except httpx.HTTPError as exc:
            raise KernelUnavailable(f"talking to the Jupyter gateway at {self.settings.url} failed ({_reason(exc)}); "
                                    f"{WHAT_TO_DO}") from None
        if response.status_code == 401:
            where = "AgentMagics.gateway_token or $" + TOKEN_ENV
            said = "was refused" if self.settings.token else "is needed"
            raise KernelUnavailable(f"the Jupyter gateway at {self.settings.url} answered {response.status_code} "
                                    f"to {method} {path}: its token {said}; set {where} to the gateway's token")
        if response.status_code >= 400:
            raise KernelUnavailable(f"the Jupyter gateway at {self.settings.url} answered {response.status_code} to "
                                    f"{method} {path}: {_error_text(response)}")
        return response.json() if response.content else None

    # -- the KernelLink protocol ----------------------------------------------------------------

    def start(self) -> None:
        """A new kernel on the gateway, connected and ready; the old one, if any, is shut down first."""
        try:
            import jupyter_server  # noqa: F401 - its wire (de)serializers
            import websockets  # noqa: F401
        except ImportError as exc:
            raise KernelUnavailable(f"--executor gateway needs {exc.name}: pip install \"smol-magic[gateway]\"") \
                from None
        self.shutdown()
        # As JupyterLab's GatewayClient does: only KERNEL_* variables (KERNEL_USERNAME, KERNEL_NAMESPACE, ...)
        # go to the gateway, which decides the rest of the kernel's environment.
        env = {k: v for k, v in os.environ.items() if k.startswith("KERNEL_")}
        model = self._request("POST", "/api/kernels", {"name": self.settings.kernel_name, "env": env},
                              timeout=START_TIMEOUT)
        self.kernel_id = model["id"]
        self._why = None
        try:
            self._connect()
        except KernelUnavailable:
            self.shutdown()
            raise

    def _connect(self) -> None:
        """The websocket to the kernel, and the kernel's answer to kernel_info (so it is ready)."""
        try:
            self.client = Channels(self.settings, self.kernel_id or "")
        except Exception as exc:  # noqa: BLE001 - handshake refused, connection refused, timeout
            raise KernelUnavailable(f"the Jupyter gateway at {self.settings.url} started a kernel but its websocket "
                                    f"did not open ({_reason(exc)}); check that websockets reach the gateway "
                                    "(a proxy in between must pass them)") from None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # a kernel_info request until one is answered, as jupyter_client's wait_for_ready does
            msg_id = self.client.send("shell", "kernel_info_request", {})
            try:
                while True:
                    reply = self.client.get_shell_msg(timeout=1.0)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
                break
            except queue.Empty:
                if self.client.lost is not None:
                    raise KernelUnavailable(f"the connection to the Jupyter gateway at {self.settings.url} dropped "
                                            f"while the kernel started ({self.client.lost})") from None
                if time.monotonic() > deadline:
                    raise KernelUnavailable(f"the kernel started by the Jupyter gateway at {self.settings.url} did "
                                            f"not answer within {READY_TIMEOUT:g} s") from None
        # Uploads land in memory (/dev/shm) where the kernel's machine has a roomy one, else in its temp folder.
        facts = self._ask({"pid": "__import__('os').getpid()",
                           "tmp": "(lambda os, shutil, tempfile: '/dev/shm' if os.access('/dev/shm', os.W_OK) and "
                                  f"shutil.disk_usage('/dev/shm').free >= {SHM_MIN_FREE} else tempfile.gettempdir())"
                                  "(__import__('os'), __import__('shutil'), __import__('tempfile'))"})
        self.kernel_pid = facts.get("pid")
        self.temp_dir = facts.get("tmp")

    def _ask(self, expressions: dict[str, str], code: str = "", timeout: float = 30.0) -> dict[str, Any]:
        """Run ``code`` silently with these user expressions; their values (Python literals) come back."""
        import ast

        assert self.client is not None
        msg_id = self.client.execute(code, silent=True, store_history=False, user_expressions=expressions)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=0.5)
            except queue.Empty:
                if not self.alive():
                    raise KernelUnavailable(f"the gateway kernel was lost: {self.death()}") from None
                if time.monotonic() > deadline:
                    raise KernelUnavailable(f"the gateway kernel did not answer within {timeout:g} s") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        values = {}
        for key, value in (reply["content"].get("user_expressions") or {}).items():
            if value.get("status") == "ok":
                try:
                    values[key] = ast.literal_eval(value["data"]["text/plain"])
                except (ValueError, SyntaxError):
                    values[key] = value["data"]["text/plain"]
        return values

    def alive(self) -> bool:
        """Connected, and the kernel has not died or been restarted under us (cheap: no REST call)."""
        if self.client is None or self._why is not None:
            return False
        if not self.client.check():
            return False
        if self.client.kernel_state in ("dead", "restarting"):
            self._why = ("the kernel on the gateway died (the gateway restarted it, empty)"
                         if self.client.kernel_state == "restarting" else "the kernel on the gateway died")
            return False
        return True

    def death(self) -> str:
        if self._why is not None:
            return self._why
        if self.client is not None and self.client.lost is not None:
            return self.client.lost
        return "it is not running"

    def interrupt(self) -> None:
        """``POST .../interrupt``; a gateway that cannot be reached is noted, not raised (the wait is bounded)."""
        if self.kernel_id is None:
            return
        try:
            self._request("POST", f"/api/kernels/{quote(self.kernel_id, safe='')}/interrupt", {}, timeout=5.0)
        except KernelUnavailable as exc:
            if self.client is not None:
                self.client._lose(str(exc))

    def restart(self) -> None:
        """A fresh kernel: the gateway restarts this one if it still can, else a new one is started."""
        if self.kernel_id is not None and self.client is not None and self.client.lost is None:
            try:
                self.client.close()
                self.client = None
                self._request("POST", f"/api/kernels/{quote(self.kernel_id, safe='')}/restart", {},
                              timeout=START_TIMEOUT)
                self._why = None
                self._connect()
                return
            except KernelUnavailable:
                pass
        self.start()

    def shutdown(self) -> None:
        """Close the websocket and ``DELETE`` the kernel, briefly: a gateway that is gone is not waited for."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.kernel_id is not None:
            kernel_id, self.kernel_id = self.kernel_id, None
            try:
                self._request("DELETE", f"/api/kernels/{quote(kernel_id, safe='')}", timeout=5.0)
            except KernelUnavailable:
                pass
        self.kernel_pid = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def close(self) -> None:
        """Shut down, and close the HTTP client."""
        self.shutdown()
        if self._http is not None:
            self._http.close()
            self._http = None

    def pid(self) -> int | None:
        return self.kernel_pid

    def describe(self) -> str:
        kernel = f"kernel {self.kernel_id[:8]}" if self.kernel_id else "no kernel"
        return f"{kernel} ({self.settings.kernel_name}) on the gateway {self.settings.url}"

    def scratch(self) -> str | None:
        return None

    def setup_code(self) -> str:
        return RECEIVER_CODE

    # -- data -------------------------------------------------------------------------------------

    def staging(self) -> str:
        """A local folder where variables are packed before they are sent (in memory: a roomy /dev/shm, as isolated)."""
        if self._staging is None or not os.path.isdir(self._staging):
            self._staging = tempfile.mkdtemp(prefix="smol-magic-gateway-", dir=_memory_folder())
        return self._staging

    def deliver(self, packets: list[Any]) -> list[dict[str, Any]]:
        """The packets' messages for the kernel: a packed file's bytes go ahead as binary frames, into a file there."""
        total = sum(p.nbytes for p in packets)
        if total > CHUNK:  # worth saying before the wait: what goes, how big
            print(f"smol-magic: sending to the gateway kernel: {', '.join(p.describe() for p in packets)} "
                  f"({size_text(total)} in all)", flush=True)
        messages = []
        for packet in packets:
            message = dict(packet.message())
            path = message.get("path")
            if path:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    with (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else contextlib.nullcontext(b"")) \
                            as data:
                        message["path"] = self.upload(data, message.get("format") or "bin")
            messages.append(message)
        return messages

    def fetch_code(self, name: str) -> str:
        """The helper's ``send_back``, packing a big value into a file in the kernel's temp folder (a unique name,
        removed once ``retrieve`` has brought it)."""
        return (f"__smol__.scratch = {self.temp_dir or '/tmp'!r}\n"
                f"try:\n    __smol__.send_back({name!r})\nfinally:\n    __smol__.scratch = None")

    def retrieve(self, message: dict[str, Any]) -> dict[str, Any]:
        """A packet packed into a file in the kernel, brought here as binary frames; its size checked first."""
        name, remote = message.get("name"), message["path"]
        nbytes = message.get("nbytes") or 0
        if self.max_transfer is not None and nbytes > self.max_transfer:
            self._download(remote, None)  # removed there, not sent
            raise TransferError(f"{name} ({message.get('type')}, {size_text(nbytes)} as {message.get('format')}) "
                                f"was not brought back: it is over the transfer limit of "
                                f"{size_text(self.max_transfer)}; raise --max-transfer (or %config "
                                "AgentMagics.max_transfer), or bring back something smaller")
        if nbytes > CHUNK:
            print(f"smol-magic: bringing back from the gateway kernel: {name} ({message.get('type')}, "
                  f"{size_text(nbytes)} as {message.get('format')})", flush=True)
        local = os.path.join(self.staging(), f"{uuid.uuid4().hex}.{message.get('format') or 'bin'}")
        self._download(remote, local)
        return {**message, "path": local}

    def _download(self, remote: str, local: str | None) -> None:
        """The kernel's file ``remote`` into ``local`` (None: only removed there); ``TransferError`` if it fails."""
        client = self.client
        if client is None:
            raise TransferError("the gateway kernel is not running")
        comm_id = uuid.uuid4().hex
        client.send("shell", "comm_open", {"comm_id": comm_id, "target_name": DOWNLOAD_TARGET,
                                           "data": {"path": remote, "send": local is not None}})
        with open(local, "wb") if local is not None else contextlib.nullcontext() as out:
            heard = time.monotonic()
            while True:
                try:
                    msg = client.get_iopub_msg(timeout=0.5)
                except queue.Empty:
                    quiet = time.monotonic() - heard
                    if client.lost is not None or quiet > DOWNLOAD_QUIET:
                        why = client.lost or f"the gateway kernel sent nothing for {DOWNLOAD_QUIET:g} s"
                        raise TransferError(f"bringing data back from the gateway kernel failed: {why}") from None
                    continue
                heard = time.monotonic()
                if msg["content"].get("comm_id") != comm_id:
                    continue
                if msg["msg_type"] == "comm_close":
                    return
                if msg["msg_type"] == "comm_msg" and out is not None:
                    for buf in msg["buffers"]:
                        out.write(buf)

    def upload(self, data: Any, suffix: str) -> str:
        """Send these bytes to a file in the kernel's temp folder, as binary frames; returns the file's path there."""
        if self.client is None or self.temp_dir is None:
            raise KernelUnavailable("the gateway kernel is not running")
        path = f"{self.temp_dir.rstrip('/')}/smol-magic-{uuid.uuid4().hex}.{suffix}"
        comm_id = uuid.uuid4().hex
        client = self.client
        client.send("shell", "comm_open", {"comm_id": comm_id, "target_name": UPLOAD_TARGET, "data": {"path": path}})
        with memoryview(data).cast("B") as view:
            for start in range(0, len(view), CHUNK):
                with view[start:start + CHUNK] as chunk:
                    client.send("shell", "comm_msg", {"comm_id": comm_id, "data": {}}, buffers=[chunk])
                if client.lost is not None:
                    raise KernelUnavailable(f"sending data to the gateway kernel failed: {client.lost}")
        client.send("shell", "comm_close", {"comm_id": comm_id, "data": {}})
        return path


def _error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    return str(body.get("message") or body.get("reason") or body)[:200]
