"""smol-magic: a code-as-action LLM agent that lives inside the Jupyter kernel.

``%load_ext smol_magic`` registers ``%%agent``; the same pieces work from
plain Python: ``CodeAgent(model=ScriptedModel([...])).run("task")``.
"""

from importlib import metadata as _metadata

from .agents import AutoApprover, CodeAgent, Decision, MultiStepAgent, Renderer, RunResult
from .executor import ExecutionResult, KernelExecutor, LocalPythonExecutor
from .guard import Policy
from .memory import ActionStep, AgentMemory, FinalAnswerStep, MemoryStep, PlanningStep, TaskStep, Verdict
from .models import InferenceClientModel, LiteLLMModel, Model, ModelError, ScriptedModel, TokenUsage
from .namespace import describe
from .tools import Tool, ToolDefinitionError, final_answer, tool

try:  # one version, in labextension/package.json; the build writes it into the package metadata
    __version__ = _metadata.version("smol-magic")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ActionStep", "AgentMemory", "AutoApprover", "CodeAgent", "Decision", "ExecutionResult",
    "FinalAnswerStep", "InferenceClientModel", "KernelExecutor", "LiteLLMModel", "LocalPythonExecutor",
    "MemoryStep", "Model", "ModelError", "MultiStepAgent", "PlanningStep", "Policy", "Renderer",
    "RunResult", "ScriptedModel", "TaskStep", "TokenUsage", "Tool", "ToolDefinitionError", "Verdict",
    "describe", "final_answer", "tool",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension lives (for ``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "smol-magic-labextension"}]


def load_ipython_extension(ipython) -> None:
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magic import unload_ipython_extension as unload

    unload(ipython)
