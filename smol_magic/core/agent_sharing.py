"""Sharing agents as smolagents does: ``to_dict`` / ``from_dict``, ``save`` / ``from_folder``, ``push_to_hub`` /
``from_hub``.

The folder has smolagents' layout: ``agent.json`` (the settings, the model, the names of the tools and
managed agents; its fields are smol-magic's own), ``prompts.yaml``, ``tools/NAME.py`` (each tool as
``tool.save`` writes it), ``managed_agents/NAME/`` (the same, for each), ``requirements.txt``. No credential is written: a model's key is read from the
environment when the agent is loaded. Functions given to the agent (``final_answer_checks``,
``step_callbacks``) are not saved: give them again to ``from_folder``, with any setting to change.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from . import sharing
from .models import (
    InferenceClientModel, LiteLLMModel, ModelResponse, OpenAIServerModel, ScriptedModel, describe_model,
)
from .sharing import ToolLoadError
from .transformers_model import TransformersModel

FORMAT = 1  # of agent.json
_MODELS: dict[str, type] = {cls.__name__: cls for cls in (LiteLLMModel, OpenAIServerModel, InferenceClientModel,
                                                         TransformersModel, ScriptedModel)}
_SETTINGS = ("name", "description", "instructions", "max_steps", "planning_interval", "timeout",
             "max_observation_chars", "stream_outputs", "provide_run_summary")


# -- to_dict / from_dict ---------------------------------------------------------------


def to_dict(agent: Any) -> dict[str, Any]:
    """The agent as JSON values: settings, model (no credential), tools' code, managed agents, prompts."""
    tools = [{"name": name, **sharing.to_dict(tool)} for name, tool in agent.tools.items() if name != "final_answer"]
    managed = {name: to_dict(m.agent) for name, m in agent.managed_agents.items()}
    requirements = {r for t in tools for r in t["requirements"]} | {r for m in managed.values()
                                                                      for r in m["requirements"]}
    data: dict[str, Any] = {"class": type(agent).__name__, "format": FORMAT, "model": _model_dict(agent.model)}
    data.update({name: getattr(agent, name) for name in _SETTINGS if hasattr(agent, name)})
    policy = getattr(agent, "policy", None)
    if policy is not None:
        data["authorized_imports"] = list(policy.authorized_imports)
    data.update(tools=tools, managed_agents=managed, prompt_templates=agent.prompt_templates,
                requirements=sorted(requirements))
    settings = {k: v for k, v in data.items() if k not in ("tools", "managed_agents")}  # checked each on its own
    sharing.check_no_credential(json.dumps(settings, default=str), f"agent {agent.name or type(agent).__name__}'s "
                                "settings (its model, instructions, prompts)")
    return data


def from_dict(data: dict[str, Any], **kwargs: Any) -> Any:
    """An agent as ``to_dict`` made it; ``kwargs`` (``model=``, ``max_steps=`` ...) replace what was saved.

    Its tools' code runs here (``Tool.from_code``): load only what you trust."""
    from .agents import CodeAgent
    from .tool_calling import ToolCallingAgent

    classes = {"CodeAgent": CodeAgent, "ToolCallingAgent": ToolCallingAgent}
    if not isinstance(data, dict) or data.get("class") not in classes:
        raise ToolLoadError("not a saved agent: expected the dict agent.to_dict() makes (its 'class' is CodeAgent "
                            "or ToolCallingAgent)")
    settings = {name: data[name] for name in _SETTINGS if name in data}
    if "authorized_imports" in data:
        settings["additional_authorized_imports"] = data["authorized_imports"]
    settings.update(
        tools=[sharing.from_code(tool["code"]) for tool in data.get("tools", [])],
        managed_agents=[from_dict(sub) for sub in data.get("managed_agents", {}).values()] or None,
        prompt_templates=data.get("prompt_templates"),
    )
    settings.update(kwargs)
    if settings.get("model") is None:
        settings["model"] = _model_from_dict(data.get("model") or {})
    return classes[data["class"]](**settings)


def _model_dict(model: Any) -> dict[str, Any]:
    info = describe_model(model)
    if isinstance(model, ScriptedModel):
        if any(isinstance(reply, ModelResponse) for reply in model.responses):
            info["responses"] = None  # a scripted tool call: give model= to from_folder
        else:
            info["responses"] = list(model.responses)
    return info


def _model_from_dict(info: dict[str, Any]) -> Any:
    cls = _MODELS.get(info.get("class", ""))
    if cls is None or (cls is ScriptedModel and info.get("responses") is None):
        raise ToolLoadError(f"the agent was saved with a {info.get('class') or 'model'} that cannot be made again "
                            "from its description: give one, from_folder(folder, model=...)")
    if cls is ScriptedModel:
        return ScriptedModel(info["responses"], model_id=info.get("model_id") or "scripted")
    options = {name: info[name] for name in ("api_base", "provider", "base_url") if info.get(name)}
    return cls(info["model_id"], **options, **info.get("parameters", {}))


# -- save / from_folder ------------------------------------------------------------------


def save(agent: Any, folder: str | os.PathLike) -> Path:
    """Write the agent into ``folder`` in smolagents' layout (see the module's docstring)."""
    return _write(to_dict(agent), Path(folder))


def _write(data: dict[str, Any], path: Path) -> Path:
    import yaml  # here: loading smol_magic stays light

    path.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in data.items() if k not in ("tools", "managed_agents", "prompt_templates")}
    settings["tools"] = [tool["name"] for tool in data["tools"]]
    settings["managed_agents"] = {name: sub["class"] for name, sub in data["managed_agents"].items()}
    (path / "agent.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    (path / "prompts.yaml").write_text(yaml.safe_dump(data["prompt_templates"], sort_keys=False, allow_unicode=True,
                                                      width=100), encoding="utf-8")
    (path / "requirements.txt").write_text("".join(f"{r}\n" for r in data["requirements"]), encoding="utf-8")
    if data["tools"]:
        (path / "tools").mkdir(exist_ok=True)
    for tool in data["tools"]:
        (path / "tools" / f"{tool['name']}.py").write_text(tool["code"], encoding="utf-8")
    for name, sub in data["managed_agents"].items():
        _write(sub, path / "managed_agents" / name)
    return path


def from_folder(folder: str | os.PathLike, **kwargs: Any) -> Any:
    """An agent saved with ``agent.save(folder)`` (your own files: no trust flag needed)."""
    return from_dict(_read(Path(folder)), **kwargs)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    if not (path / "agent.json").is_file():
        raise ToolLoadError(f"{path} has no agent.json: give the folder an agent was saved to (agent.save(folder))")
    data = json.loads((path / "agent.json").read_text(encoding="utf-8"))
    if (path / "requirements.txt").is_file():
        sharing.check_requirements((path / "requirements.txt").read_text(encoding="utf-8"), str(path))
    if (path / "prompts.yaml").is_file():
        data["prompt_templates"] = yaml.safe_load((path / "prompts.yaml").read_text(encoding="utf-8"))
    data["tools"] = [{"name": name, "code": (path / "tools" / f"{name}.py").read_text(encoding="utf-8")}
                     for name in data.get("tools", [])]
    data["managed_agents"] = {name: _read(path / "managed_agents" / name) for name in data.get("managed_agents", {})}
    return data


def _code(data: dict[str, Any], where: str = "") -> list[tuple[str, str]]:
    """(file, code) of every tool of a saved agent and of its managed agents: what loading it runs."""
    files = [(f"{where}tools/{tool['name']}.py", tool["code"]) for tool in data["tools"]]
    for name, sub in data["managed_agents"].items():
        files += _code(sub, f"{where}managed_agents/{name}/")
    return files


# -- the Hub ------------------------------------------------------------------------------


def push_to_hub(agent: Any, repo_id: str, *, token: str | None = None, private: bool | None = None,
                commit_message: str = "Upload agent", endpoint: str | None = None) -> str:
    """Publish the agent as a Space (the folder ``save`` writes), as smolagents does; returns the commit's URL.
    Others load it with ``CodeAgent.from_hub(repo_id, trust_remote_code=True)``."""
    return sharing.push_space(lambda folder: save(agent, folder), repo_id, token=token, private=private,
                              commit_message=commit_message, endpoint=endpoint)


def from_hub(repo_id: str, trust_remote_code: bool = False, *, token: str | None = None, revision: str | None = None,
             repo_type: str = "space", cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
             **kwargs: Any) -> Any:
    """An agent published on the Hub (``push_to_hub``). Loading it runs its tools' code here: without
    ``trust_remote_code=True`` this refuses, and the error shows that code so it can be read first.

    ``agent.json`` is read first; then only the files it names are downloaded (its tools, prompts,
    requirements, and its managed agents' own)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    where = dict(repo_type=repo_type, revision=revision, token=token, cache_dir=cache_dir,
                 endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None)

    def fetch(name: str, needed: bool = True) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, name, **where))
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise ToolLoadError(f"{repo_id}: no such {repo_type} on the Hub (or it is private: pass token=...)") from exc
        except EntryNotFoundError as exc:
            if not needed:
                return None
            raise ToolLoadError(f"{repo_id}: the {repo_type} has no {name}, so it holds no saved agent "
                                "(agents are shared by agent.push_to_hub or smolagents' push_to_hub)") from exc

    def fetch_agent(prefix: str) -> Path:
        """Download ``prefix``'s agent; the folder its ``agent.json`` is in."""
        found: Path = fetch(prefix + "agent.json")  # type: ignore[assignment]
        settings = json.loads(found.read_text(encoding="utf-8"))
        for name in ("prompts.yaml", "requirements.txt"):
            fetch(prefix + name, needed=False)
        for tool in settings.get("tools", []):
            fetch(f"{prefix}tools/{tool}.py")
        for name in settings.get("managed_agents", {}):
            fetch_agent(f"{prefix}managed_agents/{name}/")
        return found.parent

    data = _read(fetch_agent(""))
    if not trust_remote_code:
        shown = "\n\n".join(f"{name}:\n{textwrap.indent(code.rstrip(), '    ')}" for name, code in _code(data))
        raise ToolLoadError(f"from_hub({repo_id!r}) would run this code from the Hub ({repo_type} {repo_id}):\n\n"
                            f"{shown or '(no tools: only the agent settings)'}\n\n"
                            "Read it; if you trust it, load it with trust_remote_code=True.")
    return from_dict(data, **kwargs)


def install(agent_class: type) -> None:
    """Make these methods of every agent (called by smol_magic/__init__.py, as for tools: the loop does not
    import the sharing modules)."""
    agent_class.to_dict = to_dict
    agent_class.save = save
    agent_class.push_to_hub = push_to_hub
    agent_class.from_dict = staticmethod(from_dict)
    agent_class.from_folder = staticmethod(from_folder)
    agent_class.from_hub = staticmethod(from_hub)
