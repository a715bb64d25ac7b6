"""How a ``%%agent`` cell runs: rewritten into an awaited coroutine, so ipykernel runs it as an async cell.

The cell stays busy until the run ends, later cells queue behind it, and the event loop stays free for
widget clicks while the model thinks; the Interrupt button cancels the run within 0.1 s.
"""

from __future__ import annotations

import asyncio
import contextlib

from IPython.core.error import UsageError

from ..core.memory import RunResult


class _Interrupted(Exception):
    """KeyboardInterrupt, carried out of the run's Task as an ordinary exception."""


async def run_agent_cell(line: str, cell: str) -> RunResult | None:
    """What a ``%%agent`` cell becomes: awaited by the kernel as an async cell."""
    from IPython import get_ipython

    shell = get_ipython()
    magics = shell.magics_manager.registry.get("AgentMagics")
    if magics is None:
        raise UsageError("smol_magic is not loaded: run %load_ext smol_magic")
    async def body() -> None:
        try:
            await magics.run_async(line, cell)
        except KeyboardInterrupt:  # must not escape a Task: asyncio would re-raise it out of the kernel's loop
            raise _Interrupted() from None

    # A bare await ignores the Interrupt button; polling lets the kernel cancel us within 0.1 s.
    # asyncio.wait returns as soon as the run ends (a sleep would add up to 0.1 s to every cell).
    run = asyncio.ensure_future(body())
    try:
        while not run.done():
            await asyncio.wait({run}, timeout=0.1)
        run.result()
    except (_Interrupted, KeyboardInterrupt, asyncio.CancelledError):
        if not run.done():
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
        raise KeyboardInterrupt("the agent run was interrupted; the kernel and your variables are intact") from None
    return None


async def run_agent_cells_line(line: str) -> None:
    """What a cell holding only ``%agent cells ...`` becomes."""
    from IPython import get_ipython

    await get_ipython().magics_manager.registry["AgentMagics"].cells_async(line)


def rewrite_agent_cell(lines: list[str]) -> list[str]:
    """Input transformer: ``%%agent`` cells (and a lone ``%agent cells``) become awaited coroutines."""
    if not lines:
        return lines
    first = lines[0]
    words = first.split()
    module = "__import__('smol_magic.jupyter.async_cell', fromlist=['_'])"
    if words[:1] == ["%%agent"]:  # leaves %%agent? (help) and other magics alone
        line = first.strip()[len("%%agent"):].strip()
        cell = "".join(lines[1:])
        return [f"await {module}.run_agent_cell({line!r}, {cell!r})\n"]
    if words[:2] == ["%agent", "cells"] and not "".join(lines[1:]).strip():
        return [f"await {module}.run_agent_cells_line({first.strip()[len('%agent'):].strip()!r})\n"]
    return lines


# IPython's check_complete (the terminal's "is this cell finished?", and the kernel's
# is_complete_request) skips transformers with side effects: it then sees a "%%" cell
# and, as for every cell magic, waits for the task lines and a blank line.
rewrite_agent_cell.has_side_effects = True  # type: ignore[attr-defined]
