"""Prompt templates: the defaults ship as YAML package data (``smol_magic/prompts``); a user overrides any of them.

An agent class names its template file (``code_agent.yaml``) and which placeholders
each template may use. ``prompt_templates=`` takes a dict or the path of a YAML
file of the same shape; only the keys given change (merged over the defaults).
A key the agent does not know, a placeholder it does not fill, or one it needs
and the template lacks is refused at once with a clear error, rather than a
prompt that silently loses the tools list or the project rules.

Templates are ``str.format`` strings: ``{tools}`` is filled, ``{{`` and ``}}`` are
literal braces. (smolagents uses Jinja, ``{{ tools }}``; its templates name other
variables too, so they are recognised and refused with a hint rather than half-rendered.)
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.resources
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

PromptTemplates = dict[str, Any]  # nested like the YAML: {"system_prompt": str, "planning": {"initial_plan": str, ...}}
PromptSource = Mapping[str, Any] | str | os.PathLike | None

_JINJA = re.compile(r"\{\{\s*[\w.]+(?:\(\))?\s*\}\}|\{%-?\s")


class PromptTemplateError(ValueError):
    """A ``prompt_templates`` override the agent cannot use (unknown key, wrong placeholder, bad file)."""


@dataclass(frozen=True)
class Placeholders:
    """What a template may use (``allowed``) and what it must keep (``required``)."""

    allowed: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


@functools.lru_cache(maxsize=None)
def _default(file_name: str) -> PromptTemplates:
    """A template file shipped in ``smol_magic/prompts`` (read once per process)."""
    import yaml  # PyYAML: a dependency; imported here so that importing the agents stays fast

    resource = importlib.resources.files("smol_magic").joinpath("prompts", file_name)
    return yaml.safe_load(resource.read_text(encoding="utf-8"))


def load(files: Sequence[str], override: PromptSource, placeholders: Mapping[str, Placeholders]) -> PromptTemplates:
    """The default templates of ``files`` (later ones merged over earlier ones), then ``override``, checked.

    ``placeholders`` maps each dotted key (``planning.initial_plan``) to what its template may use.
    """
    templates = copy.deepcopy(_default(files[0]))
    for name in files[1:]:
        templates = merge(templates, _default(name), f"smol_magic/prompts/{name}")
    where = ""
    if override is not None:
        data, source = _read(override)
        templates = merge(templates, data, source)
        where = f" (in {source})"
    check(templates, placeholders, where)
    return templates


def _read(source: Mapping[str, Any] | str | os.PathLike) -> tuple[Mapping[str, Any], str]:
    """An override as a mapping, and how to name it in an error."""
    if isinstance(source, Mapping):
        return source, "prompt_templates"
    if not isinstance(source, (str, os.PathLike)):
        raise PromptTemplateError(
            f"prompt_templates must be a dict or the path of a YAML file, not {type(source).__name__}")
    import yaml

    path = Path(source).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptTemplateError(f"prompt_templates: no file {str(path)!r}; give the path of a YAML file "
                                  "(see smol_magic/prompts/code_agent.yaml for the shape)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptTemplateError(f"prompt_templates: cannot read {str(path)!r} ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PromptTemplateError(f"prompt_templates: {str(path)!r} is not valid YAML{where}: "
                                  f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, Mapping):
        raise PromptTemplateError(f"prompt_templates: {str(path)!r} must hold a mapping of prompt names to "
                                  f"templates, not a {type(data).__name__}")
    return data, str(path)


def merge(base: PromptTemplates, override: Mapping[str, Any], where: str, prefix: str = "") -> PromptTemplates:
    """``override`` over ``base``, key by key; a key ``base`` lacks is an error naming the close ones."""
    merged = dict(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise PromptTemplateError(_unknown(dotted, list(_keys(base, prefix)), where))
        if isinstance(base[key], Mapping):
            if not isinstance(value, Mapping):
                raise PromptTemplateError(f"{where}: {dotted!r} holds several prompts "
                                          f"({', '.join(base[key])}): give a mapping, not a {type(value).__name__}")
            merged[key] = merge(base[key], value, where, f"{dotted}.")
        elif not isinstance(value, str):
            raise PromptTemplateError(f"{where}: {dotted!r} must be a string template, not {type(value).__name__}")
        else:
            merged[key] = value
    return merged


def _keys(templates: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in templates.items():
        keys += _keys(value, f"{prefix}{key}.") if isinstance(value, Mapping) else [f"{prefix}{key}"]
    return keys


def _unknown(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown prompt {key!r}{hint} Known prompts here: {', '.join(known)}"


def fields(template: str) -> list[str]:
    """The placeholders of a ``str.format`` template (``{tools}`` -> ``tools``)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    return names


def check(templates: PromptTemplates, placeholders: Mapping[str, Placeholders], where: str = "") -> None:
    """Every template parses, uses only placeholders the agent fills, and keeps those it needs."""
    for key in _keys(templates):
        template = get(templates, key)
        slots = placeholders.get(key, Placeholders())
        jinja = (" It looks like a Jinja template (smolagents'): smol-magic fills {name} with single braces."
                 if _JINJA.search(template) else "")
        try:
            used = fields(template)
        except ValueError as exc:
            raise PromptTemplateError(
                f"prompt {key!r}{where}: {exc}; write {{{{ and }}}} for a literal brace.{jinja}") from None
        allowed = ", ".join("{%s}" % name for name in slots.allowed) or "none"
        unknown = [name for name in used if name not in slots.allowed]
        if unknown:
            shown = ", ".join("{%s}" % name if name else "{}" for name in dict.fromkeys(unknown))
            raise PromptTemplateError(
                f"prompt {key!r}{where} uses {shown}, which the agent does not fill (it fills: {allowed}); "
                f"write {{{{ and }}}} for a literal brace.{jinja}")
        missing = [name for name in slots.required if name not in used]
        if missing:
            raise PromptTemplateError(
                f"prompt {key!r}{where} must contain {', '.join('{%s}' % name for name in missing)}: "
                f"without it the model is not told {_WHY.get(missing[0], 'what the agent fills in there')}.{jinja}")


_WHY = {"tools": "which functions it can call", "instructions": "the instructions and the project rules",
        "imports": "which modules it may import"}


def get(templates: PromptTemplates, key: str) -> str:
    """The template at a dotted key (``planning.update_plan``)."""
    value: Any = templates
    for part in key.split("."):
        value = value[part]
    return value


def render(templates: PromptTemplates, key: str, **values: Any) -> str:
    """Fill the template at ``key``; placeholders it does not use are ignored."""
    return get(templates, key).format(**values)


@dataclass(frozen=True)
class Rules:
    """Project rules for the system prompt (an ``AGENTS.md``), and where they came from, for its heading."""

    text: str
    source: str = "the agent's rules= argument"

    @classmethod
    def of(cls, rules: "Rules | str | None") -> "Rules | None":
        """``rules=`` as given to an agent: a ``Rules``, the text itself, or None; blank text is no rules."""
        if rules is None:
            return None
        if not isinstance(rules, (Rules, str)):
            raise TypeError(f"rules must be a string (the rules' text) or a Rules, not {type(rules).__name__}")
        found = rules if isinstance(rules, Rules) else cls(rules)
        return found if found.text.strip() else None

    def heading(self) -> str:
        return f"Project rules (from {self.source}); follow them:"
