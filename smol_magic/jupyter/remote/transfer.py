"""Variables to and from a remote kernel: Arrow IPC for tables, pickle for the rest, sizes known before sending.

The packing itself is ``child.pack``/``child.unpack`` (the same code runs on
both sides). Here: the errors a person reads when a variable cannot travel,
and the sizes said before anything is sent (the gateway's ``--max-transfer``).
Arrow needs ``pyarrow`` (``pip install "smol-magic[isolated]"``); without it
tables go as pickles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import child


class TransferError(ValueError):
    """A variable that cannot be sent or brought back; the message names it and says why."""


@dataclass
class Packet:
    """One variable, packed: its format and size are known before it is sent."""

    name: str
    type_name: str
    format: str  # "arrow" or "pickle"
    nbytes: int
    body: dict[str, Any]  # the message the other side unpacks

    def message(self) -> dict[str, Any]:
        return self.body

    def describe(self) -> str:
        return f"{self.name} ({self.type_name}, {size_text(self.nbytes)} as {self.format})"

    def discard(self) -> None:
        """Remove the packet's file, if the other side has not (it removes what it read)."""
        path = self.body.get("path")
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


def pack(name: str, value: Any, folder: str | None = None) -> Packet:
    """``value`` packed for the kernel (a file in ``folder`` if given); ``TransferError`` if it cannot go."""
    try:
        body = child.pack(name, value, folder)
    except OSError as exc:
        raise TransferError(f"{name} ({type(value).__name__}) could not be written to the transfer folder {folder} "
                            f"({exc.strerror or exc}); free some space there, or send less") from None
    except Exception as exc:  # noqa: BLE001 - pickling fails in many ways (TypeError, PicklingError, ...)
        raise TransferError(
            f"{name} ({type(value).__name__}) cannot be sent to the kernel: it cannot be pickled "
            f"({type(exc).__name__}: {exc}). Send what it is made of instead (e.g. its data as a DataFrame), "
            "or run with --executor live") from None
    return Packet(name, type(value).__name__, body["format"], body["nbytes"], body)


def unpack(message: dict[str, Any]) -> Any:
    """The object of a packet that came back; ``TransferError`` if it cannot be rebuilt here."""
    try:
        return child.unpack(message)
    except Exception as exc:  # noqa: BLE001 - e.g. a class that exists only in the kernel
        raise TransferError(f"{message.get('name')} ({message.get('type')}) cannot be rebuilt in the notebook: "
                            f"{type(exc).__name__}: {exc}") from None


def size_text(n: float) -> str:
    """Bytes as a person reads them: 2 GB, 740 MB, 12 KB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}


def parse_size(text: str, flag: str) -> int:
    """``2GB``, ``512 MB``, ``1.5G`` as bytes; ``ValueError`` with what to write."""
    raw = str(text).strip().upper().replace(" ", "")
    number = raw.rstrip("KMGTIB")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value <= 0:
        raise ValueError(f"{flag} takes a size such as 2GB or 512MB, not {text!r}")
    return int(value * _UNITS[unit])
