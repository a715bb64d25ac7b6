"""Stopping an action for good: the timeout and Interrupt, even through ``except:``.

A signal handler raises once, where the code happens to be; an action with a
bare ``except:`` (or ``except BaseException``) swallows that and carries on. So
after the first stop, a trace hook re-asserts it: on every line the action
runs outside the handling of the stop itself, it raises again, and so the stop
escapes any number of nested handlers. Cleanup (``finally``, ``with`` exits)
may run for a short grace period; after it, every line raises.

CPython turns a trace function off when it raises. Three things turn it back
on: a profile hook (it never raises; it sees every call and return), the stop
exception's own ``__del__`` (it runs when a handler drops it) and a reminder
signal every 0.1 s while the action still runs, which also raises again
wherever the action is. So any pure-Python action ends; code blocked inside a
C call stops when the call returns to Python.

Frames of the action are those below the executor's *boundary* frame (the
code object that ``exec``s the action: IPython's ``run_code``, or the plain
executor's ``execute``) that descend from a ``<module>`` frame it runs: the
executor's own bookkeeping around the action is never interrupted twice.
``sys.settrace`` exists in every Python we support (on 3.12+ it is built on
``sys.monitoring``), so one mechanism serves all.
"""

from __future__ import annotations

import _signal
import contextlib
import enum
import math
import signal
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Any, Iterator

GRACE = 0.5  # seconds a stopped action's cleanup (finally, with-exits) may run before it is cut too
REMIND = 0.1  # seconds between reminders while a stopped action still runs
MAX_TIMEOUT = 86_400.0  # one day: longer is a typo, and setitimer overflows far above it


def check_timeout(value: Any, what: str = "--timeout") -> float:
    """A time limit in seconds: finite, above zero, at most a day. ValueError says what to write."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT:
        shown = f"{value:g}" if isinstance(value, (int, float)) else repr(value)
        raise ValueError(f"{what} must be a positive number of seconds, not {shown} "
                         f"(at most {MAX_TIMEOUT:g}, a day)")
    return seconds


class Reason(enum.Enum):
    TIMEOUT = "timeout"
    INTERRUPT = "interrupt"


class _Reasserted:
    """Mixin of the stop exceptions: when a handler drops one, the stop re-arms its trace hook."""

    stop: "Stop | None" = None

    def __del__(self) -> None:
        stop = self.stop
        if stop is not None and stop.active:
            with contextlib.suppress(BaseException):  # a finaliser must never raise
                stop.arm(sys._getframe(1))


class ActionTimeout(_Reasserted, BaseException):
    """Raised inside agent code when it runs past its time limit.

    A ``BaseException`` so a bare ``except Exception`` in agent code cannot swallow it.
    """


class ActionInterrupted(_Reasserted, KeyboardInterrupt):
    """Raised inside agent code when the user presses Interrupt."""


class Stop:
    """The stop of one action: fired by the deadline or Interrupt, re-asserted until the action ends."""

    def __init__(self, boundary: CodeType, timeout: float | None):
        self.boundary = boundary
        self.timeout = timeout
        self.reason: Reason | None = None
        self.fired_at = 0.0
        self.active = False  # between the first stop and the end of the action
        self.old_trace, self.old_profile = sys.gettrace(), sys.getprofile()

    # -- which frames are the action's --------------------------------------

    def action_frames(self, frame: FrameType | None) -> list[FrameType]:
        """``frame`` and its callers up to the action's top frame; empty when ``frame`` is not the action's."""
        frames = []
        while frame is not None:
            if frame.f_code in _OWN:
                return []
            frames.append(frame)
            back = frame.f_back
            if back is not None and back.f_code is self.boundary:
                return frames if frame.f_code.co_name == "<module>" else []
            frame = back
        return []

    def in_action(self, frame: FrameType | None) -> bool:
        return bool(self.action_frames(frame))

    # -- raising -------------------------------------------------------------

    def exception(self) -> BaseException:
        if self.reason == Reason.INTERRUPT:
            exc: BaseException = ActionInterrupted("interrupted by the user")
        else:
            exc = ActionTimeout(f"the action ran past its {self.timeout:g} s time limit")
        exc.stop = self  # type: ignore[attr-defined]
        return exc

    def fire(self, reason: Reason, frame: FrameType | None) -> None:
        """A stop arrives (from a signal handler): raise it here, and keep raising it until the action ends."""
        first = self.reason is None
        if first or reason == Reason.INTERRUPT:  # a timed-out action that is also interrupted ends the run
            self.reason = reason
        if first:
            self.fired_at = time.monotonic()
            self.active = True
            signal.setitimer(signal.ITIMER_REAL, REMIND, REMIND)
        self.arm(frame)
        if first or self.in_action(frame):
            raise self.exception()

    def arm(self, frame: FrameType | None) -> None:
        """(Re)install the trace and profile hooks, and trace the action's frames already running."""
        frames = self.action_frames(frame) if self.active else []
        if not frames:
            return
        if sys.gettrace() is not self.trace:
            sys.settrace(self.trace)
        if sys.getprofile() is not self.profile:
            sys.setprofile(self.profile)
        for each in frames:
            each.f_trace = self.trace

    def disarm(self) -> None:
        # Only what arm() changed: setting a hook that is already in place is not free, and
        # re-setting a C profiler (cProfile) from Python would replace it with a plain call.
        if sys.gettrace() is not self.old_trace:
            sys.settrace(self.old_trace)
        if sys.getprofile() is not self.old_profile:
            sys.setprofile(self.old_profile)

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.active:
            return None
        if event == "call":
            return self.trace if self.in_action(frame) else None
        if event == "line" and self.due():
            raise self.exception()
        return self.trace

    def due(self) -> bool:
        """Raise again now: the action carries on after swallowing the stop, or its cleanup ran out of grace."""
        handling = isinstance(sys.exc_info()[1], _Reasserted)
        return not handling or time.monotonic() - self.fired_at > GRACE

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.active:
            return
        if event == "return" and frame.f_back is not None and frame.f_back.f_code is self.boundary:
            self.disarm()  # the action's top frame is done: the executor's own work runs untraced
        elif sys.gettrace() is not self.trace:
            self.arm(frame)

    # -- signals ---------------------------------------------------------------

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is None:
            self.fire(Reason.TIMEOUT, frame)
        else:  # a reminder
            self.arm(frame)
            if self.in_action(frame) and self.due():
                raise self.exception()

    def on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.fire(Reason.INTERRUPT, frame)

    def end(self) -> None:
        self.active = False


_OWN = {f.__code__ for f in (Stop.action_frames, Stop.in_action, Stop.disarm, Stop.exception, Stop.fire, Stop.arm,
                             Stop.trace, Stop.due, Stop.profile, Stop.on_alarm, Stop.on_interrupt,
                             _Reasserted.__del__)}


@contextlib.contextmanager
def stoppable(timeout: float | None, boundary: CodeType) -> Iterator[Stop | None]:
    """Run an action that the deadline and Interrupt stop, whatever it catches.

    Only on the main thread (signals arrive there); elsewhere the action runs without limits.
    ``boundary`` is the code object that runs the action (see the module docstring).
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    stop = Stop(boundary, timeout)
    # signal.signal is _signal.signal wrapped to turn handlers into enums and back: ~30 us an action
    old_int = _signal.signal(signal.SIGINT, stop.on_interrupt)
    old_alarm = _signal.signal(signal.SIGALRM, stop.on_alarm)
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield stop
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.end()
        stop.disarm()
        _signal.signal(signal.SIGALRM, old_alarm)
        _signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def timer_paused() -> Iterator[None]:
    """Stop the running action's clock for the block: a managed agent called by the action works
    under its own limits (each of its actions has a time limit, its run has max_steps)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, remaining, interval)
