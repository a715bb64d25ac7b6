"""smol-magic: a code-as-action LLM agent that lives inside the Jupyter kernel.

``%load_ext smol_magic`` registers ``%%agent``; the same pieces work from
plain Python: ``CodeAgent(model=ScriptedModel([...])).run("task")``.
"""

from importlib import metadata as _metadata
from typing import Any

from .context.namespace import describe
from .core.agents import CodeAgent, MultiStepAgent
from .core.approval import AutoApprover, Decision
from .core.events import Renderer
from .core.execution import ExecutionResult, LocalPythonExecutor
from .core.managed import ManagedAgent
from .core.mcp_client import MCPClient, ToolCollection
from .core.memory import (
    ActionStep, AgentMemory, FinalAnswerStep, MemoryStep, PlanningStep, RunResult, TaskStep, Timing, Verdict,
)
from .core.prompts import PromptTemplateError, Rules
from .core.models import (
    ChatMessageToolCall, InferenceClientModel, LiteLLMModel, Model, ModelError, ModelResponse, OpenAIServerModel,
    ScriptedModel, TokenUsage,
)
from .core.telemetry import instrument, uninstrument
from .core.tool_calling import ToolCallingAgent
from .core import agent_sharing as _agent_sharing
from .core import sharing as _sharing
from .core.sharing import ToolLoadError, load_tool
from .core.tools import Tool, ToolDefinitionError, final_answer, tool
from .core.transformers_model import TransformersModel
from .export.notebook import export_run
from .guard import Policy
from .ui.text import TextRenderer as _TextRenderer
from .ui.text import replay as _replay

MultiStepAgent.exporter = export_run  # agent.to_notebook(...): the loop itself does not import the exports
MultiStepAgent.replayer = _replay  # agent.replay(): nor the text renderer
MultiStepAgent.text_trace = _TextRenderer  # CodeAgent(..., verbosity_level=1) prints its steps
_sharing.install(Tool)  # tool.save / to_dict, Tool.from_hub / from_dict / from_langchain
_agent_sharing.install(MultiStepAgent)  # agent.save / to_dict / push_to_hub, CodeAgent.from_folder / from_hub

try:  # one version, in labextension/package.json; the build writes it into the package metadata
    __version__ = _metadata.version("smol-magic")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ActionStep", "AgentMemory", "AutoApprover", "ChatMessageToolCall", "CodeAgent", "Decision", "ExecutionResult",
    "FinalAnswerStep", "InferenceClientModel", "KernelExecutor", "LiteLLMModel", "LocalPythonExecutor",
    "ManagedAgent", "MCPClient", "MemoryStep", "Model", "ModelError", "ModelResponse", "MultiStepAgent", "OpenAIServerModel",
    "PlanningStep", "Policy", "PromptTemplateError", "Renderer", "Rules", "RunResult", "ScriptedModel", "TaskStep",
    "Timing", "TokenUsage", "Tool", "ToolCallingAgent", "ToolCollection", "ToolDefinitionError", "ToolLoadError", "TransformersModel",
    "Verdict", "describe", "final_answer", "instrument", "load_tool", "tool", "uninstrument",
]


def __getattr__(name: str) -> Any:
    """``KernelExecutor`` needs IPython: imported on first use, so ``import smol_magic`` does not."""
    if name == "KernelExecutor":
        from .jupyter.kernel_executor import KernelExecutor

        return KernelExecutor
    raise AttributeError(f"module 'smol_magic' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension lives (for ``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "smol-magic-labextension"}]


def load_ipython_extension(ipython) -> None:
    from .jupyter.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .jupyter.magic import unload_ipython_extension as unload

    unload(ipython)
