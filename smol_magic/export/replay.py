"""Recorded model replies: ``RecordingModel`` writes them, ``ReplayModel`` answers from them offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, AsyncIterator

from ..core.models import (
    BaseModel, ChatMessageToolCall, Messages, ModelError, ModelResponse, StreamDelta, TokenUsage,
    accumulate_tool_calls,
)
from ..core.tool_calling import takes_tools
from ..safety.redact import redact_data


class RecordingModel(BaseModel):
    """Wraps a model and writes every reply, with the request it answered, to a JSON-lines file.

    The file is what ``ReplayModel`` answers from, so a notebook re-runs offline.
    """

    def __init__(self, inner: Any, path: str | os.PathLike):
        self.inner = inner
        self.model_id = getattr(inner, "model_id", type(inner).__name__)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"smol_magic_recording": 1, "model_id": self.model_id}) + "\n")

    def _append(self, messages: Messages, content: str, usage: TokenUsage,
                calls: list[ChatMessageToolCall] | None = None) -> None:
        record: dict[str, Any] = {"request": messages, "reply": content, "token_usage": usage.__dict__}
        if calls:
            record["tool_calls"] = [vars(call) for call in calls]
        with self.path.open("a") as f:
            f.write(json.dumps(redact_data(record)) + "\n")

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None) -> ModelResponse:
        response = await self.inner.generate(messages, stop_sequences, **self._tools(tools_to_call_from))
        self._append(messages, response.content, response.token_usage, response.tool_calls)
        return response

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None, tools_to_call_from: list[Any] | None = None
    ) -> AsyncIterator[StreamDelta]:
        parts, usage, calls = [], TokenUsage(), []
        async for delta in self.inner.generate_stream(messages, stop_sequences, **self._tools(tools_to_call_from)):
            parts.append(delta.content)
            usage = delta.token_usage or usage
            accumulate_tool_calls(calls, delta.tool_calls)
            yield delta
        self._append(messages, "".join(parts), usage, calls)

    def _tools(self, tools: list[Any] | None) -> dict[str, Any]:
        """Native tools are passed on only when asked for and the inner model takes them (it may predate them)."""
        return {"tools_to_call_from": tools} if tools and takes_tools(self.inner) else {}


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _comparable(messages: Messages) -> list[tuple[str, str]]:
    """Requests compared for replay: memory addresses in reprs differ from run to run."""
    return [(m.get("role", ""), _ADDRESS.sub("0x…", m.get("content") or "")
             + "".join(json.dumps(c, sort_keys=True) for c in m.get("tool_calls") or [])) for m in messages]


class ReplayModel(BaseModel):
    """Answers from a recording, in order; stops with a clear error if the run diverges from it.

    The recording is a ``--record`` file, or (``from_records``) the replies of a stored run.
    """

    def __init__(self, path: str | os.PathLike, check_requests: bool = True):
        self.path = Path(path)
        self.name = self.path.name
        self.hint = ""
        remake = f"make one with %%agent --record {self.path}"
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ModelError(f"no recording at {self.path}: {remake}") from None
        except UnicodeDecodeError:
            raise ModelError(f"{self.path} is not a smol-magic recording (it is not text): {remake}") from None
        except OSError as exc:
            raise ModelError(f"cannot read {self.path} ({exc.strerror or exc})") from None
        if not any(line.strip() for line in lines):
            raise ModelError(f"{self.path} is empty, not a smol-magic recording: {remake}")
        try:
            header = json.loads(lines[0])
            self.records = [json.loads(line) for line in lines[1:] if line.strip()]
        except ValueError:
            raise ModelError(f"{self.path} is not a smol-magic recording (its lines are not JSON): {remake}") from None
        if not isinstance(header, dict) or "smol_magic_recording" not in header:
            raise ModelError(f"{self.path} is not a smol-magic recording (no header line)")
        self.model_id = f"replay:{header.get('model_id', '?')}"
        self.check_requests = check_requests
        self.position = 0

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], name: str, model_id: str, check_requests: bool = True,
                     hint: str = "") -> "ReplayModel":
        """Answer from ``records`` (``request``, ``reply``, ``token_usage``, ``tool_calls``), e.g. a stored run's.

        A record whose ``request`` is None is not checked; ``hint`` says what to do when the
        run carries an earlier conversation the records did not."""
        model = cls.__new__(cls)
        model.path, model.name, model.hint = None, name, hint
        model.records = list(records)
        model.model_id = f"replay:{model_id}"
        model.check_requests, model.position = check_requests, 0
        return model

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None) -> ModelResponse:
        if self.position >= len(self.records):
            raise ModelError(
                f"replay diverged: the run asked for reply {self.position + 1} but {self.name} holds "
                f"{len(self.records)}; re-record with --record"
            )
        record = self.records[self.position]
        if self.check_requests and record.get("request") is not None:
            _check_same(self.position + 1, self.name, _comparable(record["request"]), _comparable(messages), self.hint)
        self.position += 1
        calls = [ChatMessageToolCall(**call) for call in record.get("tool_calls", [])]
        return ModelResponse(record["reply"], TokenUsage(**record.get("token_usage", {})), calls)


def _check_same(number: int, name: str, recorded: list, now: list, hint: str = "") -> None:
    if recorded == now:
        return
    where = next((i for i, (a, b) in enumerate(zip(recorded, now)) if a != b), min(len(recorded), len(now)))
    if where < min(len(recorded), len(now)):
        was, is_ = recorded[where][1], now[where][1]
        at = next((i for i, (a, b) in enumerate(zip(was, is_)) if a != b), min(len(was), len(is_)))
        detail = (f"message {where + 1} ({now[where][0]}) differs: recorded {was[max(0, at - 30):at + 50]!r}, "
                  f"now {is_[max(0, at - 30):at + 50]!r}")
        if "Variables in the notebook" in was[:at].rpartition("New task:")[2]:
            raise ModelError(
                f"replay diverged at reply {number} of {name}: the notebook's variables are not those it was "
                f"recorded with ({detail}). A recording replays in the state it was made in: restart the kernel "
                "and run the notebook from the top, or re-record with --record")
    else:
        detail = f"the recorded request had {len(recorded)} messages, this one has {len(now)}"
    if len(recorded) > len(now) and hint:  # the recording carries an earlier conversation this run does not
        raise ModelError(f"replay diverged at reply {number} of {name}: {hint}")
    if len(now) > len(recorded):  # the run carries an earlier conversation the recording did not
        raise ModelError(
            f"replay diverged at reply {number} of {name}: this run continues an earlier conversation "
            f"({len(now)} messages, the recording {len(recorded)}). Add --reset to replay from a fresh "
            "conversation, as it was recorded"
        )
    raise ModelError(
        f"replay diverged at reply {number} of {name}: {detail}. The notebook, its data or smol-magic "
        "changed since the recording; re-record with --record"
    )
