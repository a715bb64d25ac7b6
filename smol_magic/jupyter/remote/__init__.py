"""Executors whose actions run in another kernel: ``isolated`` (a child kernel here), ``gateway`` (a remote one).

Jupyter lives at the edges: nothing in ``core/`` imports this package; the
loop sees a ``RemoteExecutor`` through the ``Executor`` protocol.
"""
