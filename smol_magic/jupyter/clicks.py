"""Widget clicks while an action holds the kernel's main thread: for a managed agent's approval card.

A managed agent runs inside its manager's action, so the kernel's main thread is busy running that
action's code and its event loop, where ipykernel 7.4 dispatches comm messages, does not turn. While
such a card waits, the main thread reads what the shell channel thread has queued for it (an inproc
ZMQ socket of ipykernel's subshell manager, ipykernel >= 7): widget messages (``comm_msg``) are
handled at once, as ipykernel 7.4 handles them while an async cell awaits; anything else (the next
cell's execute_request ...) is handed to the kernel's own handler, which queues it behind the running
cell, in the order it came. Where that socket is not found (another kernel), ``ClickPump.available``
is False and such actions are refused with the reason instead.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class ClickPump:
    """Handles the comm messages a frontend sends while the main thread is held; defers the rest in order."""

    def __init__(self, shell: Any):
        self.kernel = getattr(shell, "kernel", None)
        self.stream = self._main_stream()

    def _main_stream(self) -> Any:
        try:
            stream = self.kernel.shell_channel_thread.manager._shell_channel_to_main.to_stream
            callable(stream._recv_callback) and stream.socket  # noqa: B018 - what pump() uses must exist
            self.kernel.comm_manager, self.kernel.session.feed_identities  # noqa: B018
        except AttributeError:
            return None
        return stream

    @property
    def available(self) -> bool:
        return self.stream is not None

    def pump(self) -> None:
        """Read every message queued for the main thread; handle clicks now, hand the rest on."""
        import zmq

        stream, session, kernel = self.stream, self.kernel.session, self.kernel
        while True:
            try:
                frames = stream.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:  # peek: the header only (a peek does not mark the message as seen for the kernel's own read)
                idents, parts = session.feed_identities(list(frames), copy=False)
                msg = session.deserialize(parts, content=False, copy=False)
            except Exception:  # noqa: BLE001 - not ours to judge: the kernel's handler reports it
                msg = None
            if msg is not None and msg["header"]["msg_type"] == "comm_msg":
                try:
                    msg["content"] = session.unpack(msg["content"])
                    kernel.comm_manager.comm_msg(None, idents, msg)
                except Exception:  # noqa: BLE001 - a widget's handler failing must not end the wait
                    log.exception("smol-magic: a widget message failed while an action held the kernel")
            else:  # as the stream would have: the kernel's handler, as a task for when the loop turns again
                stream._run_callback(stream._recv_callback, frames)
